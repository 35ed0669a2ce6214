"""Which routes' context windows can take a call's prompt, before anything is sent (no I/O).

Every call goes through :func:`fit_windows`, so the common case must cost next to nothing:
first the UTF-8 ceiling of the prompt (:func:`~llamaroute.money.request_token_ceiling`, which
no real token count exceeds, template included) plus the output reserve is compared with each
route's window. A short prompt fits every window by that bound and no token estimate is made.
Only when the bound overflows some window is the prompt estimated (the fast heuristic with its
``[low, high]`` band, never the exact tokenizer on a call's path), and the rule
:func:`~llamaroute.money.window_fit` shared with ``estimate()`` decides: a route the prompt
does not fit is refused with the window in the reason, a *tight* route (only the band's high
end overflows) is kept but tried after the routes that fit with room.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .._exceptions import ContextWindowExceededError
from ..catalog import Route
from ..money import MIN_ANSWER_TOKENS, RequestShape, output_reserve, window_fit
from ._candidate import Candidate

__all__ = ["fit_windows", "last_if_tight", "window_exceeded"]


def fit_windows(
    candidates: Sequence[Candidate],
    max_tokens: int | None,
    ceiling: Callable[[], int],
    shape: Callable[[], RequestShape],
) -> tuple[list[Candidate], list[tuple[Route, str]], frozenset[str]]:
    """The candidates whose window takes the prompt, the refused routes with their reasons,
    and the ``pinned`` names of the tight routes among those kept."""
    bound = ceiling()
    # max_tokens before each route clamps it is at least every route's reserve: if the prompt's
    # ceiling and it fit the smallest window, every route fits (the usual case, one pass).
    need = bound + (MIN_ANSWER_TOKENS if max_tokens is None else max_tokens)
    if need <= min(c.route.context_window for c in candidates):
        return list(candidates), [], frozenset()
    estimated = shape()
    kept: list[Candidate] = []
    refused: list[tuple[Route, str]] = []
    tight: set[str] = set()
    for candidate in candidates:
        route = candidate.route
        if bound + output_reserve(route, max_tokens) <= route.context_window:
            kept.append(candidate)
            continue
        fit = window_fit(route, estimated)
        if fit == "fits":
            kept.append(candidate)
        elif fit == "tight":
            kept.append(candidate)
            tight.add(route.pinned)
        else:
            refused.append((route, fit))
    return kept, refused, frozenset(tight)


def last_if_tight(ordered: list[Candidate], tight: frozenset[str]) -> list[Candidate]:
    """``ordered`` with the tight routes moved after the others (each group in its order)."""
    if not tight:
        return ordered
    return [c for c in ordered if c.route.pinned not in tight] + [
        c for c in ordered if c.route.pinned in tight
    ]


def window_exceeded(target: str, reasons: Sequence[str]) -> ContextWindowExceededError:
    """The error for a call whose prompt no route's window takes, before anything is sent."""
    return ContextWindowExceededError(
        f"the prompt does not fit the context window of any route for {target}: "
        + "; ".join(reasons)
        + " (shorten the prompt or the conversation, lower max_tokens, or pick a model or "
        "provider with a larger window: client.estimate(...) shows each route's figures)"
    )
