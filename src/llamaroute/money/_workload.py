"""Estimate a whole workload: a JSONL file of requests, streamed line by line.

Each line is one request, a JSON object with ``prompt`` or ``messages`` (plus optional
``model``, ``system``, ``image``, ``max_tokens``, ``expected_output_tokens`` and an ``id`` of
your own)::

    {"prompt": "Summarise this ticket: ...", "max_tokens": 300}
    {"messages": [{"role": "user", "content": "Hi"}], "expected_output_tokens": 50}
    {"model": "llama-3.2-90b-vision", "prompt": "What does this chart show?", "image": "c.png"}

A line without ``model`` asks for the default model. The totals are kept per route and per
provider (see :mod:`~llamaroute.money._workload_totals`), so that the result says which
provider is cheapest for every line of the workload.

Memory stays flat whatever the file's size: a line is parsed, reduced to its token counts and
dropped; each route keeps running integer sums (:class:`~llamaroute.money._estimate.TokenTotals`),
priced once at the end (costs are linear, so that is exactly the sum of per-line costs). Lines
are checked with plain code rather than a pydantic model per line, which was several times
slower, but by the same rules as :class:`~llamaroute.ChatRequest`. A bad line is reported with
its number and a typed error, counted, and skipped; it does not stop the run.

Lines are parsed a thousand per ``json.loads`` call (:mod:`._jsonl`), and the usual kinds of
line (a prompt, a system prompt, text messages) are checked by :func:`_plain_shape` inline,
which only ever accepts: anything else, or anything wrong, goes the general way, so the totals
and the errors are exactly those of one ``json.loads`` and every check per line.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import InvalidImageError, InvalidRequestError, UnsupportedFeatureError
from .._records import MAX_OUTPUT_TOKENS
from ._estimate import RequestShape, SkippedRoute, split_routes
from ._jsonl import json_lines, load_line
from ._tokens import (
    BEGIN_TOKENS,
    MESSAGE_TOKENS,
    REPLY_HEADER_TOKENS,
    CounterChoice,
    TextCounter,
    TokenCounter,
    chat_template_tokens,
    image_tiles_for,
    text_counter,
)
from ._workload_totals import (
    BadLine,
    Demand,
    RouteTotals,
    ShapeKey,
    WorkloadOption,
    WorkloadResult,
    finish,
)

if TYPE_CHECKING:
    from ..catalog import Catalog

__all__ = [
    "BadLine",
    "RouteTotals",
    "WorkloadOption",
    "WorkloadResult",
    "estimate_workload",
    "parse_line",
]

_KEYS = frozenset({"model", "prompt", "messages", "system", "image", "max_tokens",
                   "expected_output_tokens", "id"})  # fmt: skip
# Model names remembered with their demand (names are finite: keys, aliases, pins and their
# spellings; past that the cache starts again, the sums are kept by demand).
_NAMES = 1024
_ROLES = frozenset({"system", "user", "assistant"})
# Bad lines kept on the result for callers that do not pass on_bad_line (bounded: flat memory).
_KEEP_BAD = 20
# Distinct images whose tile count is remembered; past that the cache starts again.
_IMAGE_CACHE = 4096
_PROGRESS_EVERY = 2000
# chat_template_tokens(messages) is this plus MESSAGE_TOKENS a message (no images).
_TEMPLATE_BASE = BEGIN_TOKENS + REPLY_HEADER_TOKENS


class _Images:
    """Tile counts per image reference, read once each (errors are remembered too)."""

    def __init__(self, base: Path | None) -> None:
        self.base = base
        self.known: dict[str, int | InvalidImageError] = {}

    def tiles(self, reference: object) -> int:
        if not isinstance(reference, str) or not reference.strip():
            raise InvalidRequestError("'image' must be a file path or a data:/http(s) URL")
        _text(reference, "'image'")
        found = self.known.get(reference)
        if found is None:
            if len(self.known) >= _IMAGE_CACHE:
                self.known.clear()
            found = self.known[reference] = self._read(reference)
        if isinstance(found, InvalidImageError):
            raise found
        return found

    def _read(self, reference: str) -> int | InvalidImageError:
        source: str | Path = reference
        if not reference.lower().startswith(("data:", "http://", "https://")):
            path = Path(reference).expanduser()
            source = path if path.is_absolute() or self.base is None else self.base / path
        try:
            return image_tiles_for(source)
        except InvalidImageError as error:
            return error


def parse_line(raw: str | bytes, count: TextCounter, images: _Images | None = None) -> RequestShape:
    """One workload line as a :class:`~llamaroute.money._estimate.RequestShape`.

    Raises :class:`~llamaroute.InvalidRequestError` (or :class:`~llamaroute.InvalidImageError`)
    saying what is wrong with it.
    """
    band = count.band if isinstance(count, TokenCounter) else _exact_band(count)
    name = count.name if isinstance(count, TokenCounter) else "custom"
    return RequestShape(*_parse(raw, _checking(band), images)[1], tokenizer=name)


#: Counts a text as ``(low, expected, high)`` tokens; ``None`` for text that is not valid
#: Unicode (a lone surrogate), which the general path then reports (see :func:`_checking`).
Band = Callable[[str], tuple[int, int, int] | None]


def _checking(band: Callable[[str], tuple[int, int, int]]) -> Band:
    """``band``, answering ``None`` for text that cannot be encoded as UTF-8 (checked here,
    so that a cache in front of it checks each distinct text once)."""

    def checked(text: str) -> tuple[int, int, int] | None:
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return None
        return band(text)

    return checked


def _exact_band(count: TextCounter) -> Callable[[str], tuple[int, int, int]]:
    def band(text: str) -> tuple[int, int, int]:
        tokens = count(text)
        return tokens, tokens, tokens

    return band


def _parse(
    raw: str | bytes,
    band: Band,
    images: _Images | None,
) -> tuple[str | None, ShapeKey]:
    """The line's own ``model`` (``None`` if it names none) and its shape."""
    return _shape(load_line(raw), band, images)


def _shape(
    data: object,
    band: Band,
    images: _Images | None,
) -> tuple[str | None, ShapeKey]:
    """The ``model`` and shape of a line already parsed (see :func:`_parse`)."""
    if type(data) is dict and data.keys() <= _KEYS:
        found = _plain_shape(data, band)
        if found is not None:
            return found
    return _checked_shape(data, band, images)


def _checked_shape(
    data: object,
    band: Band,
    images: _Images | None,
) -> tuple[str | None, ShapeKey]:
    """:func:`_shape` for any line, every rule checked in turn (the general path)."""
    if not isinstance(data, dict):
        raise InvalidRequestError(f"expected a JSON object, not {_kind(data)}")
    if not data.keys() <= _KEYS:
        unknown = data.keys() - _KEYS
        raise InvalidRequestError(
            f"unknown field(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_KEYS))}"
        )
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequestError(f"'model' must be a model name, not {_kind(model)}")
    if model is not None and not model.strip():
        raise InvalidRequestError("'model' is empty: name a model, or leave the field out")
    turns = _turns(data)
    tiles: tuple[int, ...] = ()
    if any(refs for _, _, refs in turns):
        reader = images or _Images(None)
        tiles = tuple(reader.tiles(ref) for _, _, refs in turns for ref in refs)
    low = expected = high = 0
    for _, content, _ in turns:
        counted = band(content)
        assert counted is not None  # (every text was checked by _turns)
        low, expected, high = low + counted[0], expected + counted[1], high + counted[2]
    template = chat_template_tokens(len(turns), len(tiles))
    max_tokens = data.get("max_tokens")
    if max_tokens is not None:
        max_tokens = _whole(max_tokens, "max_tokens", minimum=1, maximum=MAX_OUTPUT_TOKENS)
    output = data.get("expected_output_tokens")
    if output is not None:
        output = _whole(output, "expected_output_tokens", minimum=0)
    return model, (expected + template, tiles, max_tokens, output, low + template,
                   high + template)  # fmt: skip


def _plain_shape(data: dict[str, Any], band: Band) -> tuple[str | None, ShapeKey] | None:
    """The shape of a line of the usual kinds (a prompt with an optional system prompt, or
    messages with text content; no image), or ``None`` for :func:`_shape`'s general path to
    read it. It only accepts: a line that breaks a rule goes to the general path, which says
    what is wrong, so that both paths give the same shapes and the same errors."""
    model = data.get("model")
    if model is not None and (type(model) is not str or not model.strip()):
        return None
    if "image" in data:
        return None
    prompt, messages, system = data.get("prompt"), data.get("messages"), data.get("system")
    texts: list[str]
    if messages is None:
        if type(prompt) is not str:
            return None
        if system is None:
            texts = [prompt]
        elif type(system) is str:
            texts = [system, prompt]
        else:
            return None
    elif type(messages) is list and messages:
        texts = []
        roles = []
        for item in messages:
            if type(item) is not dict or len(item) != 2:
                return None
            role, content = item.get("role"), item.get("content")
            if type(content) is not str or role not in _ROLES:
                return None
            roles.append(role)
            texts.append(content)
        if system is not None:
            if type(system) is not str or roles[0] == "system":
                return None
            texts.insert(0, system)
            roles.insert(0, "system")
        if prompt is not None:
            if type(prompt) is not str:
                return None
            texts.append(prompt)
        elif roles[-1] != "user":
            return None
        if "system" in roles[1:]:
            return None
    else:
        return None
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and not (
        type(max_tokens) is int and 1 <= max_tokens <= MAX_OUTPUT_TOKENS
    ):
        return None
    output = data.get("expected_output_tokens")
    if output is not None and not (type(output) is int and output >= 0):
        return None
    low = expected = high = 0
    for text in texts:
        counted = band(text)
        if counted is None:  # not valid Unicode: the general path says where
            return None
        low, expected, high = low + counted[0], expected + counted[1], high + counted[2]
    template = _TEMPLATE_BASE + MESSAGE_TOKENS * len(texts)
    return model, (expected + template, (), max_tokens, output, low + template, high + template)


def _turns(data: dict[str, Any]) -> list[tuple[str, str, list[object]]]:
    """(role, text, image references) per message, by ChatRequest.create's rules."""
    prompt, messages, system = data.get("prompt"), data.get("messages"), data.get("system")
    if type(prompt) is str and messages is None and system is None and "image" not in data:
        return [("user", _text(prompt, "'prompt'"), [])]  # the usual line, checked cheaply
    if prompt is None and messages is None:
        raise InvalidRequestError("a request needs 'prompt' or 'messages'")
    turns = [_message(item, number) for number, item in enumerate(_list(messages), start=1)]
    if system is not None:
        if not isinstance(system, str):
            raise InvalidRequestError(f"'system' must be a string, not {_kind(system)}")
        _text(system, "'system'")
        if turns and turns[0][0] == "system":
            raise InvalidRequestError(
                "give the system prompt as 'system' or first message, not both"
            )
        turns.insert(0, ("system", system, []))
    if prompt is not None:
        if not isinstance(prompt, str):
            raise InvalidRequestError(f"'prompt' must be a string, not {_kind(prompt)}")
        turns.append(("user", _text(prompt, "'prompt'"), []))
    roles = [role for role, _, _ in turns]
    if not roles or roles[-1] != "user":
        raise InvalidRequestError("the conversation must end with a user message")
    if "system" in roles[1:]:
        raise InvalidRequestError("a system message may only come first")
    if "image" in data:
        # Attached to the prompt, or to the last user message (which is the last message).
        turns[-1][2].append(data["image"])
    return turns


def _list(messages: object) -> list[object]:
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise InvalidRequestError(f"'messages' must be a list, not {_kind(messages)}")
    return messages


def _message(item: object, number: int) -> tuple[str, str, list[object]]:
    where = f"messages[{number}]"
    if not isinstance(item, dict):
        raise InvalidRequestError(f"{where} must be an object with role and content")
    role, content = item.get("role"), item.get("content")
    if role not in _ROLES:
        raise InvalidRequestError(f"{where}.role must be system, user or assistant, not {role!r}")
    if set(item) - {"role", "content"}:
        raise InvalidRequestError(f"{where} has unknown fields; expected role and content")
    if isinstance(content, str):
        return role, _text(content, f"{where}.content"), []
    if not isinstance(content, list) or not content:
        raise InvalidRequestError(f"{where}.content must be a string or a non-empty list of parts")
    texts: list[str] = []
    refs: list[object] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(_text(part["text"], f"{where}.content"))
        elif kind == "image" and "image" in part:
            refs.append(part["image"])
        else:
            raise InvalidRequestError(
                f'{where}.content parts are {{"type": "text", "text": ...}} or '
                f'{{"type": "image", "image": ...}}'
            )
    if refs and role != "user":
        raise InvalidRequestError(f"{where}: only user messages can carry images")
    return role, "".join(texts), refs


def _whole(value: object, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequestError(f"{name} must be a whole number >= {minimum}, not {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidRequestError(f"{name} must be at most {maximum:,}, not {value:,}")
    return value


def _text(value: str, where: str) -> str:
    """``value``, if it can be encoded as UTF-8 (JSON's ``"\\ud800"`` decodes to a lone
    surrogate, which the token counter cannot encode)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidRequestError(
                f"{where} is not valid Unicode: a lone surrogate at position {error.start}"
            ) from None
    return value


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")  # fmt: skip


def estimate_workload(
    lines: Iterable[str | bytes],
    model: str | None = None,
    *,
    catalog: Catalog | None = None,
    providers: Sequence[str] | None = None,
    region: str | None = None,
    include_opt_in: bool = False,
    tokenizer: str | os.PathLike[str] | None = None,
    counter: CounterChoice = "auto",
    base_dir: str | os.PathLike[str] | None = None,
    on_bad_line: Callable[[BadLine], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> WorkloadResult:
    """Totals per route and per provider for a workload of JSONL ``lines`` (see the module
    docstring).

    ``model`` is the default for lines that name no ``model`` of their own (without it, such a
    line is a bad line). Relative image paths are read from ``base_dir`` (the workload file's
    folder, for the command line). ``on_bad_line`` is called for each bad line as it is met
    (an unknown model on a line is one); the result keeps the count and the first few.
    ``on_progress`` gets the number of lines read every few thousand lines. ``counter`` and
    ``tokenizer`` choose how text is counted, as for :func:`~llamaroute.estimate`. Raises, before
    reading a line: :class:`~llamaroute.UnknownModelError` for an unknown default model,
    :class:`~llamaroute.ConfigurationError` for unknown providers or an unknown region, and
    :class:`~llamaroute.UnsupportedFeatureError` when no route of the default model matches
    the filters.
    """
    from ..catalog import default_catalog  # deferred: loaded on first use

    catalog = catalog or default_catalog()
    split_routes((), catalog, providers=providers, region=region)  # checks the filters
    demands: dict[tuple[str, ...], Demand] = {}
    names: dict[str, Demand] = {}

    def demand_for(name: str) -> Demand:
        found = names.get(name)
        if found is None:
            resolution = catalog.resolve(name, include_opt_in=include_opt_in)
            routes, elsewhere = split_routes(
                resolution.routes, catalog, providers=providers, region=region
            )
            ended = [(r, catalog.lifecycle_refusal(r)) for r in routes]
            routes = [r for r, why in ended if why is None]
            elsewhere += [SkippedRoute(r.provider, r.model_id, why) for r, why in ended if why]
            key = (resolution.model.key, *(route.pinned for route in resolution.routes))
            found = demands.get(key)
            if found is None:
                found = demands[key] = Demand(
                    key=resolution.model.key, vision=resolution.model.vision,
                    routes=tuple(routes), elsewhere=tuple(elsewhere),
                    prices={route.pinned: catalog.price(route, region) for route in routes},
                )  # fmt: skip
            if len(names) >= _NAMES:
                names.clear()
            names[name] = found
        return found

    default = demand_for(model) if model is not None else None
    if default is not None and not default.routes:
        reasons = "; ".join(map(str, default.elsewhere))
        raise UnsupportedFeatureError(
            f"no route of {default.key} matches the filters" + (f": {reasons}" if reasons else "")
        )
    result = WorkloadResult(model=default.key if default is not None else "")
    # Workloads repeat their system prompts and templates: remember recent counts.
    counting = text_counter(tokenizer, counter)
    band = functools.lru_cache(maxsize=4096)(_checking(counting.band))
    images = _Images(Path(base_dir) if base_dir is not None else None)
    for number, data in json_lines(lines):
        result.lines += 1
        if on_progress is not None and not result.lines % _PROGRESS_EVERY:
            on_progress(number)
        try:
            if isinstance(data, InvalidRequestError):
                raise data
            # _shape, inlined: this loop runs once per line.
            found = (
                _plain_shape(data, band) if type(data) is dict and data.keys() <= _KEYS else None
            )
            name, shape = found if found is not None else _checked_shape(data, band, images)
            if name is not None:
                demand = demand_for(name)
            elif default is not None:
                demand = default
            else:
                raise InvalidRequestError(
                    "no model: give the line a 'model', or give a default model (--model)"
                )
            if shape[1] and not demand.vision:
                raise UnsupportedFeatureError(f"{demand.key} takes text only, not images")
        except InvalidRequestError as error:  # UnknownModelError is one too
            bad = BadLine(number, error)
            result.bad_lines += 1
            if len(result.first_bad) < _KEEP_BAD:
                result.first_bad.append(bad)
            if on_bad_line is not None:
                on_bad_line(bad)
            continue
        result.requests += 1
        demand.tally(shape)
    finish(result, demands.values())
    return result
