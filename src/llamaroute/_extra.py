"""Per-call provider options (``extra=``), namespaced by provider, checked before any I/O.

``extra={"openrouter": {...}, "ollama": {...}, "bedrock": {...}}``: each provider applies its
own namespace only (``providers/<name>/_options.py``), so a fallback never sends OpenRouter's
options to Bedrock. The rules live here, below every provider, so that a bad option fails when
the request is built, whichever providers the client has, and never half-way through a call.

What is refused, and why (the message says so too):

- what llamaroute itself sets from the call (the model, the messages, streaming, tools,
  structured output) and the sampling parameters that have a call keyword (``max_tokens``,
  ``temperature``, ``top_k``...): the keyword is range-checked and gated per route, and
  ``max_tokens`` is what budgets reserve for;
- OpenRouter's ``models``/``route`` (its own fallback: llamaroute's fallback and accounting
  must see each attempt) and usage turned off (costs need usage);
- Bedrock options priced differently from the catalog's on-demand prices (``serviceTier``,
  ``performanceConfig``) or that replace llamaroute's own fields; Ollama keys its
  ``Client.chat`` does not take.

Values are copied (the request is immutable) and must be JSON data; a ``Decimal`` is sent as
its decimal text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["PROVIDER_NAMES", "ProviderOptions", "check_extra", "price_amount"]

#: The provider names ``extra=`` is keyed by.
PROVIDER_NAMES = ("openrouter", "bedrock", "ollama")

ProviderOptions = dict[str, dict[str, Any]]
"""``extra=`` once checked: provider name -> that provider's options (JSON data)."""

_KEYWORD = "set it with the call's {0}= keyword, which is checked against each route's range"

# Sampling parameters that are call keywords, by the name each provider uses for them.
_SAMPLING_NAMES = ("temperature", "top_p", "top_k", "stop", "seed", "frequency_penalty",
                   "presence_penalty")  # fmt: skip
_SAMPLING = {name: _KEYWORD.format(name) for name in _SAMPLING_NAMES}
_MAX_TOKENS = "set it with max_tokens=: budgets and max_cost reserve for it"

_OPENROUTER_REFUSED = {
    "model": "llamaroute sends the route's model ID (choose it with model= or providers=)",
    "messages": "llamaroute builds the messages from prompt=/messages=",
    "models": "it is OpenRouter's own fallback list: llamaroute falls back itself, so that "
    "each attempt is retried, priced and listed in attempts",
    "route": "it turns on OpenRouter's own fallback: llamaroute falls back itself",
    "stream": "llamaroute decides streaming (use client.stream())",
    "stream_options": "llamaroute decides streaming and always asks for usage",
    "n": "llamaroute reads and prices one answer per attempt",
    "max_tokens": _MAX_TOKENS,
    "max_completion_tokens": _MAX_TOKENS,
    "tools": "pass tools= to the call",
    "tool_choice": "pass tool_choice= to the call",
    "response_format": "pass response_format= to the call",
    **_SAMPLING,
}
#: OpenRouter's ``provider.max_price`` fields (USD per million tokens; per image or request).
_MAX_PRICE_FIELDS = ("prompt", "completion", "image", "audio", "request")

_BEDROCK_TAKEN = ("guardrailConfig", "additionalModelRequestFields",
                  "additionalModelResponseFieldPaths", "requestMetadata")  # fmt: skip
_BEDROCK_REFUSED = {
    "modelId": "llamaroute sends the route's inference profile (choose it with model= or "
    "providers=)",
    "messages": "llamaroute builds the messages from prompt=/messages=",
    "system": "pass system= to the call",
    "inferenceConfig": "set max_tokens=, temperature=, top_p= and stop= on the call: they are "
    "range-checked per route, and budgets reserve for max_tokens",
    "toolConfig": "pass tools= to the call",
    "outputConfig": "pass response_format= to the call",
    "serviceTier": "other tiers are priced differently from the on-demand prices llamaroute "
    "accounts with",
    "performanceConfig": "latency-optimized inference is priced differently from the "
    "on-demand prices llamaroute accounts with",
    "promptVariables": "llamaroute sends messages, not a prompt-management prompt",
}
_GUARDRAIL_FIELDS = {
    "guardrailIdentifier": None,
    "guardrailVersion": None,
    "trace": ("enabled", "disabled", "enabled_full"),
    "streamProcessingMode": ("sync", "async"),  # streams only; left out of a plain call
}
# botocore checks types and enums but not patterns: Bedrock would refuse these after sending.
_GUARDRAIL_PATTERNS = {
    "guardrailIdentifier": re.compile(
        r"[a-z0-9]+|arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+"
    ),
    "guardrailVersion": re.compile(r"[1-9][0-9]{0,7}|DRAFT"),
}
_METADATA_TEXT = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")
# Meta Llama's native request fields on Bedrock that Converse already sets from the call.
_LLAMA_NATIVE = {
    "max_gen_len": _MAX_TOKENS,
    "temperature": _KEYWORD.format("temperature"),
    "top_p": _KEYWORD.format("top_p"),
    "prompt": "llamaroute builds the prompt from prompt=/messages=",
    "images": "pass images in the messages or with image=",
}

_OLLAMA_TAKEN = ("options", "keep_alive")
_OLLAMA_REFUSED = {
    "model": "llamaroute sends the route's tag (choose it with model= or providers=)",
    "messages": "llamaroute builds the messages from prompt=/messages=",
    "stream": "llamaroute decides streaming (use client.stream())",
    "tools": "pass tools= to the call",
    "format": "pass response_format= to the call",
}
_OLLAMA_OPTIONS_REFUSED = {"num_predict": _MAX_TOKENS, **_SAMPLING}


def check_extra(value: object) -> ProviderOptions:
    """``extra=`` checked and copied, or a ``ValueError`` saying what is wrong and what to do
    (the request's validation turns it into an :class:`~llamaroute.InvalidRequestError`)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(
            "extra takes a dict keyed by provider name, e.g. "
            f'{{"openrouter": {{"provider": {{...}}}}}}, not {type(value).__name__}'
        )
    checked: ProviderOptions = {}
    for name, options in value.items():
        if name not in _CHECKS:
            raise ValueError(
                f"unknown provider {name!r}: extra is keyed by provider name "
                f"({', '.join(PROVIDER_NAMES)})"
            )
        if not isinstance(options, Mapping):
            raise ValueError(
                f"extra[{name!r}] must be a dict of that provider's options, "
                f"not {type(options).__name__}"
            )
        copied = _json_copy(options, name)
        _CHECKS[name](copied)
        checked[name] = copied
    return checked


def price_amount(value: object, where: str) -> Decimal:
    """A price given as a number or a decimal string, as a finite ``Decimal`` >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where} must be a number or a decimal string (USD)")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where} must be a number or a decimal string (USD)") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{where} must be a finite amount >= 0 (USD)")
    return amount


def _json_default(value: object) -> object:
    if isinstance(value, Decimal) and value.is_finite():
        return f"{value:f}"
    raise TypeError(type(value).__name__)


def _json_copy(options: Mapping[Any, Any], name: str) -> dict[str, Any]:
    try:
        text = json.dumps(dict(options), allow_nan=False, default=_json_default)
        copied = json.loads(text)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"extra[{name!r}] must be JSON data (dicts with string keys, lists, strings, finite "
            f"numbers, booleans, None): {error}"
        ) from None
    except RecursionError:
        raise ValueError(f"extra[{name!r}] is nested too deeply") from None
    if not all(isinstance(key, str) for key in options):
        raise ValueError(f"extra[{name!r}]: option names must be strings")
    return copied  # type: ignore[no-any-return]


def _refuse(name: str, *keys: str, why: str) -> ValueError:
    where = "".join(f"[{key!r}]" for key in (name, *keys))
    return ValueError(f"extra{where} is not allowed: {why}")


def _check_openrouter(options: dict[str, Any]) -> None:
    for key, why in _OPENROUTER_REFUSED.items():
        if key in options:
            raise _refuse("openrouter", key, why=why)
    if "usage" in options and options["usage"] != {"include": True}:
        why = "llamaroute needs usage to price each attempt (it always asks for it)"
        raise _refuse("openrouter", "usage", why=why)
    preferences = options.get("provider")
    if preferences is None:
        return
    if not isinstance(preferences, dict):
        raise ValueError("extra['openrouter']['provider'] must be a dict of provider preferences")
    if "require_parameters" in preferences and not isinstance(
        preferences["require_parameters"], bool
    ):
        raise ValueError("extra['openrouter']['provider']['require_parameters'] must be a bool")
    ceiling = preferences.get("max_price")
    if ceiling is None:
        return
    where = "extra['openrouter']['provider']['max_price']"
    if not isinstance(ceiling, dict):
        raise ValueError(f"{where} must be a dict ({', '.join(_MAX_PRICE_FIELDS)})")
    for field, amount in ceiling.items():
        if field not in _MAX_PRICE_FIELDS:
            raise ValueError(f"{where} takes {', '.join(_MAX_PRICE_FIELDS)}, not {field!r}")
        price_amount(amount, f"{where}[{field!r}]")


def _only_taken(
    provider: str,
    options: dict[str, Any],
    refused: Mapping[str, str],
    taken: Sequence[str],
    api: str,
) -> None:
    """Each key of ``options`` is one ``provider`` takes: a refused one says why, an unknown
    one lists what is taken (providers whose API has a closed set of fields)."""
    for key in options:
        if key in refused:
            raise _refuse(provider, key, why=refused[key])
        if key not in taken:
            raise ValueError(f"extra[{provider!r}] takes {', '.join(taken)}; {api} has no {key!r}")


def _check_bedrock(options: dict[str, Any]) -> None:
    _only_taken("bedrock", options, _BEDROCK_REFUSED, _BEDROCK_TAKEN, "Converse")
    guardrail = options.get("guardrailConfig")
    if guardrail is not None:
        where = "extra['bedrock']['guardrailConfig']"
        if not isinstance(guardrail, dict):
            raise ValueError(f"{where} must be a dict")
        for field, value in guardrail.items():
            if field not in _GUARDRAIL_FIELDS:
                raise ValueError(f"{where} takes {', '.join(_GUARDRAIL_FIELDS)}, not {field!r}")
            allowed = _GUARDRAIL_FIELDS[field]
            if not isinstance(value, str) or not value or (allowed and value not in allowed):
                kind = f"one of {', '.join(allowed)}" if allowed else "a non-empty string"
                raise ValueError(f"{where}[{field!r}] must be {kind}")
        for field, pattern in _GUARDRAIL_PATTERNS.items():
            if field not in guardrail:
                raise ValueError(f"{where} needs {field} (the guardrail's ID or ARN and version)")
            if not pattern.fullmatch(guardrail[field]):
                raise ValueError(
                    f"{where}[{field!r}] is not a guardrail "
                    + (
                        "ID or ARN"
                        if field == "guardrailIdentifier"
                        else "version (1, 2... or DRAFT)"
                    )
                )
    fields = options.get("additionalModelRequestFields")
    if fields is not None:
        if not isinstance(fields, dict):
            raise ValueError("extra['bedrock']['additionalModelRequestFields'] must be a dict")
        for key in fields:
            if key in _LLAMA_NATIVE:
                why = _LLAMA_NATIVE[key]
                raise _refuse("bedrock", "additionalModelRequestFields", key, why=why)
    paths = options.get("additionalModelResponseFieldPaths")
    if paths is not None and (
        not isinstance(paths, list)
        or len(paths) > 10
        or not all(isinstance(path, str) and path for path in paths)
    ):
        raise ValueError(
            "extra['bedrock']['additionalModelResponseFieldPaths'] must be a list of at most "
            "10 JSON pointers (strings)"
        )
    metadata = options.get("requestMetadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or not 1 <= len(metadata) <= 16
        or not all(isinstance(value, str) for value in metadata.values())
        or not all(key and _METADATA_TEXT.fullmatch(key) for key in metadata)
        or not all(_METADATA_TEXT.fullmatch(value) for value in metadata.values())
    ):
        raise ValueError(
            "extra['bedrock']['requestMetadata'] must be a dict of 1 to 16 string values, keys "
            "and values of at most 256 letters, digits, spaces and :_@$#=/+,-."
        )


def _check_ollama(options: dict[str, Any]) -> None:
    _only_taken("ollama", options, _OLLAMA_REFUSED, _OLLAMA_TAKEN, "ollama's chat")
    keep_alive = options.get("keep_alive")
    if "keep_alive" in options and (
        isinstance(keep_alive, bool) or not isinstance(keep_alive, int | float | str)
    ):
        raise ValueError(
            "extra['ollama']['keep_alive'] must be a duration: seconds or a string like '10m'"
        )
    settings = options.get("options")
    if settings is None:
        return
    if not isinstance(settings, dict):
        raise ValueError("extra['ollama']['options'] must be a dict of Ollama options")
    for key in settings:
        if key in _OLLAMA_OPTIONS_REFUSED:
            raise _refuse("ollama", "options", key, why=_OLLAMA_OPTIONS_REFUSED[key])
    num_ctx = settings.get("num_ctx")
    if "num_ctx" in settings and (
        isinstance(num_ctx, bool) or not isinstance(num_ctx, int) or num_ctx < 1
    ):
        raise ValueError("extra['ollama']['options']['num_ctx'] must be a positive integer")


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "openrouter": _check_openrouter,
    "bedrock": _check_bedrock,
    "ollama": _check_ollama,
}
