"""OpenRouter's errors, with no I/O: the one mapping from an error answer (an HTTP error, an
``error`` object in a 200 body or a stream chunk) to llamaroute's error tree.

Facts relied on (https://openrouter.ai/docs/api/reference/errors-and-debugging): errors come
as ``{"error": {"code", "message", "metadata": {"error_type"}}}``; ``error_type`` is the stable
field to branch on; a mid-stream error carries its HTTP-like status in ``error.code``.
OpenAI-compatible gateways name a model they do not serve with ``error.code ==
"model_not_found"`` or ``error.param == "model"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..._exceptions import (
    EndpointConfigurationError,
    MalformedResponseError,
    ProviderError,
)
from .._errors import CONTEXT_RULE, ErrorRule, context_overflow, parse_retry_after, status_rule
from .._http import load_json

__all__ = ["NAME", "error_from_object", "map_error"]

NAME = "openrouter"


def map_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    model_id: str,
    redact: Callable[[str], str] = str,
    url: str | None = None,
) -> ProviderError:
    """The llamaroute error for an OpenRouter HTTP error response.

    Branches on the HTTP status and the structured fields of OpenRouter's error body
    (``error.metadata.error_type``; OpenAI's ``error.code`` / ``error.param`` naming the model),
    never on message text. A 404 that is not an API's JSON error (an HTML page, or JSON of
    another shape) means that ``url`` is not a chat-completions endpoint: a configuration
    error, reported as a :class:`~llamaroute.ProviderConnectionError` with code
    ``endpoint_not_found`` that is not retried (another provider may still answer).
    """
    try:
        parsed = load_json(body, provider=NAME, model_id=model_id, what="error body")
    except MalformedResponseError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, str):
        error = {"message": error}
    if status == 404 and not isinstance(error, dict):
        return _not_an_endpoint(headers, parsed, model_id=model_id, url=url, redact=redact)
    if not isinstance(error, dict):
        error = {}
    if not error.get("message"):
        text = body[:200].decode("utf-8", "replace").strip()
        error = {**error, "message": text or f"HTTP {status}"}
    return error_from_object(
        error, model_id=model_id, status=status, headers=headers, redact=redact
    )


def _not_an_endpoint(
    headers: Mapping[str, str],
    parsed: Any,
    *,
    model_id: str,
    url: str | None,
    redact: Callable[[str], str],
) -> ProviderError:
    types = [value for name, value in headers.items() if name.lower() == "content-type"]
    kind = (types[0].split(";")[0].strip() if types else "") or "untyped"
    what = "JSON that is not an API error" if parsed is not None else f"a {kind} page"
    where = redact(url) if url else "the URL"
    return EndpointConfigurationError(
        f"{where} answered HTTP 404 with {what}: it is not an OpenAI-compatible chat"
        " completions endpoint. Check base_url: it is the API root, such as"
        " https://openrouter.ai/api/v1, without /chat/completions",
        provider=NAME,
        model_id=model_id,
        status_code=404,
        code="endpoint_not_found",
        retryable=False,
    )


def _status_from_code(code: object) -> int | None:
    """An HTTP-like status in ``error.code`` (``502``, or ``"502"`` from some gateways)."""
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        return code
    if isinstance(code, str) and len(code) == 3 and code.isdigit():
        return int(code)
    return None


def _names_the_model(error: Mapping[str, Any]) -> bool:
    """Whether an OpenAI-style error says the model itself is what is wrong: ``error.code``
    or ``error.type`` ``"model_not_found"``, or ``error.param == "model"``."""
    return (
        error.get("code") == "model_not_found"
        or error.get("type") == "model_not_found"
        or error.get("param") == "model"
    )


def error_from_object(
    error: Mapping[str, Any],
    *,
    model_id: str,
    status: int | None,
    headers: Mapping[str, str],
    redact: Callable[[str], str] = str,
) -> ProviderError:
    metadata = error.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    availability = error.get("availability")
    error_type = metadata.get("error_type")
    if not isinstance(error_type, str) and isinstance(availability, dict):
        error_type = availability.get("code")
    error_type = error_type if isinstance(error_type, str) else ""
    if status is None:
        # Mid-stream and in-body errors carry their HTTP-like status in error.code.
        status = _status_from_code(error.get("code"))
    named = _names_the_model(error) and status in (400, 404, 422, None)
    if named and error_type not in _ERROR_TYPE_STATUS:
        # The route is the problem, not the request: another provider may serve the model.
        error_type = "model_not_found"
    message = redact(str(error.get("message") or "request failed")[:2000])
    if status is not None and 300 <= status < 400:
        # Never followed: the Authorization header must not travel to another host. Whatever
        # the body says, the redirect is the failure.
        error_type = ""
        message = (
            f"the API answered with a redirect (HTTP {status}), which llamaroute does not follow"
            " so that the key stays with OpenRouter: check base_url"
        )
    rule, message = _classify(status, error_type, metadata, message)
    if status in (400, 413, None) and context_overflow(message, error_type):
        # The prompt is over this endpoint's window: a larger window elsewhere may take it.
        rule = CONTEXT_RULE
    return rule.build(
        message,
        provider=NAME,
        model_id=model_id,
        status_code=status,
        code=redact(error_type[:100]) if error_type else None,
        # OpenRouter may send Retry-After on 503 as well as 429: keep it whatever the status.
        retry_after=parse_retry_after(headers),
        retryable=False if headers.get("x-should-retry", "").lower() == "false" else None,
    )


#: The ``error.metadata.error_type`` (or ``error.availability.code``) values that name a failure
#: more precisely than a status can (they also come with no status at all, mid-stream), each with
#: the HTTP status OpenRouter documents for it: the type maps as that status does in the shared
#: table. ``model_not_found`` comes as a 400 but means what a 404 means. Source:
#: https://openrouter.ai/docs/api/reference/errors-and-debugging
_ERROR_TYPE_STATUS: dict[str, int] = {
    "authentication": 401, "payment_required": 402,
    "not_found": 404, "no_endpoints": 404, "model_not_found": 404,
    "rate_limit_exceeded": 429, "timeout": 504,
    "server": 500, "provider_unavailable": 502, "provider_overloaded": 503,
}  # fmt: skip

#: What a status says to the user, beyond the server's own message.
_PREFIXES = {
    401: "OpenRouter rejected the API key: ",
    402: "the OpenRouter account or key is out of credits (a billing problem, not an outage;"
    " add credits at https://openrouter.ai/settings/credits): ",
    403: "not permitted: ",
    404: "OpenRouter has no available endpoint for this model: ",
}


def _classify(
    status: int | None, error_type: str, metadata: Mapping[str, Any], message: str
) -> tuple[ErrorRule, str]:
    """The rule and the message for one error: the shared status table, read at the status the
    error type stands for when OpenRouter sent a known one."""
    if status == 403 and (metadata.get("reasons") or metadata.get("flagged_input")):
        # Moderation flagged the input: the request itself is the problem, as in a 400.
        return status_rule(400), f"flagged by moderation: {message}"
    meant = _ERROR_TYPE_STATUS.get(error_type, status)
    if status is None and error_type and meant is None:
        # A type we do not know, with no status: OpenRouter refused the request as it is.
        meant = 400
    return status_rule(meant), _PREFIXES.get(meant or 0, "") + message
