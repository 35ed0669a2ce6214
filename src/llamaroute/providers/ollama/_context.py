"""A fixed ``num_ctx`` against the prompt, before sending (no I/O).

Ollama does not refuse a prompt longer than its context: it cuts it (the oldest messages
first, then the front of what is left) and answers from the rest, with nothing in the answer
to say so but a ``prompt_eval_count`` lower than the prompt (a count that prompt caching
lowers too, so it cannot tell a cut prompt from a cached one). llamaroute therefore sizes
``options.num_ctx`` to each request (:func:`~._wire.estimate_num_ctx`, within the route's
window, which every call's plan has already checked), and a provider configured with a fixed
``num_ctx`` checks the prompt against it here, by the same rule as a route's window
(:func:`~llamaroute.money.window_fit`): a prompt it cannot hold is refused with
:class:`~llamaroute.ContextWindowExceededError` before it is sent, and the call falls back to a
route with room. The heuristic count runs only when the prompt's UTF-8 byte ceiling does not
fit.
"""

from __future__ import annotations

from ..._exceptions import ContextWindowExceededError
from ...money import output_reserve, request_shape, request_token_ceiling, window_refusal
from .._base import ProviderCall
from ._wire import NAME

__all__ = ["check_fixed_context"]


def check_fixed_context(call: ProviderCall, num_ctx: int) -> None:
    """Raise :class:`ContextWindowExceededError` if ``call``'s prompt and answer cannot fit a
    context of ``num_ctx`` tokens (smaller than the route's window)."""
    route = call.route
    if num_ctx >= route.context_window:
        return  # the plan checked the route's window already
    if request_token_ceiling(call.request) + output_reserve(route, call.max_tokens) <= num_ctx:
        return
    shape = request_shape(call.request, tiles=(), counter="heuristic")
    limited = route.model_copy(update={"context_window": num_ctx})
    refusal = window_refusal(limited, shape)
    if refusal is not None:
        raise ContextWindowExceededError(
            f"the prompt {refusal} (OllamaProvider(num_ctx={num_ctx})); Ollama would cut it "
            "silently, so it is not sent: raise num_ctx, or leave it unset to size it per "
            "request",
            provider=NAME, model_id=route.model_id, code="num_ctx_exceeded",
        )  # fmt: skip
