"""Whether a request fits a route's context window: the one rule, shared by ``estimate()``
and by every call's plan (no I/O).

The rule, with the prompt's estimate band ``[low, expected, high]`` on the route (the text's
band plus the route's chat template, :data:`Route.template_tokens`) and the output reserve
(:func:`output_reserve`):

* ``expected + reserve > window``: the route is refused (skipped before sending). When even
  ``low + reserve`` is over, the overflow is certain; when only ``expected`` is, it is likely,
  and a prompt that big would at best leave the answer no room.
* ``high + reserve > window`` only: the route is *tight*. It is kept, but a plan tries the
  routes that fit with the whole band first (:func:`window_fit` says which).
* otherwise it fits.

Images do not count against the window beyond their ``<|image|>`` tag (Llama 3.2 Vision
reads the image through cross-attention, not as prompt tokens), as the estimate counts them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ..catalog import Route


class RequestShape(Protocol):
    """What the rule reads of a :class:`~._estimate.RequestShape` (a protocol, so that the
    estimate can use the rule without an import cycle)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def input_low(self) -> int: ...
    @property
    def input_high(self) -> int: ...
    @property
    def max_tokens(self) -> int | None: ...


__all__ = ["MIN_ANSWER_TOKENS", "output_reserve", "prompt_band", "window_fit", "window_refusal"]

#: Output tokens a request without ``max_tokens`` must leave room for. One: the provider
#: accepts any prompt that leaves the answer a token (and every provider's default output cap
#: is "what the window leaves"), so refusing more would skip routes that would answer. The
#: answer's length is then the provider's business (``finish_reason="length"``).
MIN_ANSWER_TOKENS = 1

Fit = Literal["fits", "tight"]


def output_reserve(route: Route, max_tokens: int | None) -> int:
    """The output tokens counted against ``route``'s window: ``max_tokens`` clamped to the
    route's max output (as the client clamps it before sending), else
    :data:`MIN_ANSWER_TOKENS`."""
    if max_tokens is None:
        return MIN_ANSWER_TOKENS
    cap = route.max_output_tokens
    return min(max_tokens, cap) if cap else max_tokens


def prompt_band(route: Route, shape: RequestShape) -> tuple[int, int, int]:
    """``(low, expected, high)`` prompt tokens of ``shape`` on ``route``: the text's band and
    Meta's chat format, plus what the route's template adds."""
    low, expected, high = route.template_tokens
    return shape.input_low + low, shape.input_tokens + expected, shape.input_high + high


def window_refusal(route: Route, shape: RequestShape) -> str | None:
    """Why ``route``'s context window cannot take ``shape`` with its output reserve (``None``:
    it can), in words that name the window, e.g. ``"needs ~41,000 prompt tokens + 1,024
    output, context window is 32,768"``."""
    fit = window_fit(route, shape)
    return fit if fit not in ("fits", "tight") else None


def window_fit(route: Route, shape: RequestShape) -> Fit | str:
    """``"fits"``, ``"tight"`` (only the band's high end overflows: keep the route, but try
    others first) or the refusal (see the module's rule)."""
    reserve = output_reserve(route, shape.max_tokens)
    window = route.context_window
    low, expected, high = prompt_band(route, shape)
    if high + reserve <= window:
        return "fits"
    if expected + reserve <= window:
        return "tight"
    output = "" if shape.max_tokens is None else f" + {reserve:,} output"
    certain = "" if low + reserve > window else " (likely: the estimate's low end fits)"
    return f"needs ~{expected:,} prompt tokens{output}, context window is {window:,}{certain}"
