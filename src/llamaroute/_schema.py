"""Structured output: what ``response_format=`` takes, and checking an answer against it.

``response_format`` is a pydantic model class or a JSON-schema dict for an object. Either
becomes an :class:`OutputSchema` when the request is built (anything else is an
:class:`~llamaroute.InvalidRequestError`, before any I/O). After the call, :meth:`OutputSchema.
check` reads the answer leniently (code fences and prose around the JSON are dropped, as small
models add them) and validates it strictly: a pydantic model with pydantic itself, a dict schema
with the small validator below, which covers the common subset (``type``, ``properties``,
``required``, ``additionalProperties: false``, ``items``, ``enum``, ``const``, ``anyOf`` /
``oneOf``, local ``$ref``). Keywords outside that subset are not checked (not refused).

This module imports nothing from llamaroute but the error tree, so every layer may use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ._exceptions import InvalidRequestError

__all__ = ["MAX_ANSWER_CHARS", "Checked", "OutputSchema", "output_schema"]

#: Answers longer than this are not parsed (a runaway answer is reported, not decoded).
MAX_ANSWER_CHARS = 1_000_000

_MAX_ERRORS = 20
_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


@dataclass(frozen=True, slots=True)
class Checked:
    """An answer read against the schema: the validated ``value`` (a model instance, or plain
    JSON data for a dict schema), or the ``errors`` that make it unusable."""

    value: Any = None
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, eq=False, slots=True)
class OutputSchema:
    """A normalised ``response_format``: a ``name`` for the wire (letters, digits, ``_`` and
    ``-``), the JSON ``schema`` sent to the provider, and the pydantic ``model`` that validates
    the answer (``None`` for a dict schema)."""

    name: str
    schema: dict[str, Any]
    model: type[BaseModel] | None = None
    text: str = field(default="", repr=False)  # the schema as compact JSON, for prompts

    def instruction(self) -> str:
        """The system-prompt text that asks for JSON matching the schema (the mechanism of a
        route with no native one, and a help on every other)."""
        return (
            "Answer with a single JSON object and nothing else (no prose, no code fences). "
            f"It must conform to this JSON Schema: {self.text}"
        )

    def repair_prompt(self, errors: tuple[str, ...]) -> str:
        """The follow-up user message of a repair attempt: what was wrong, and the ask again."""
        listed = "\n".join(f"- {error}" for error in errors[:_MAX_ERRORS])
        return (
            "Your previous answer was not valid JSON for the required schema:\n"
            f"{listed}\n"
            "Reply again with only the corrected JSON object, conforming to this JSON Schema: "
            f"{self.text}"
        )

    def check(self, text: str) -> Checked:
        """Read ``text`` as JSON and validate it; never raises."""
        if len(text) > MAX_ANSWER_CHARS:
            return Checked(errors=(f"the answer is {len(text)} characters long, over the "
                                   f"{MAX_ANSWER_CHARS} this reads",))  # fmt: skip
        try:
            data = json.loads(_json_part(text))
        except (ValueError, RecursionError) as error:
            return Checked(errors=(f"not valid JSON: {error}",))
        if self.model is not None:
            try:
                return Checked(self.model.model_validate(data))
            except ValidationError as error:
                return Checked(errors=tuple(_pydantic_errors(error)))
            except RecursionError:
                return Checked(errors=("the JSON is nested too deeply",))
        errors: list[str] = []
        try:
            _validate(data, self.schema, self.schema, "$", errors, 0)
        except RecursionError:
            errors.append("the JSON is nested too deeply")
        return Checked(errors=tuple(errors[:_MAX_ERRORS])) if errors else Checked(data)


def output_schema(value: object) -> OutputSchema:
    """``value`` (a pydantic model class, a JSON-schema dict for an object, or an
    :class:`OutputSchema`) as an :class:`OutputSchema`; anything else raises
    :class:`~llamaroute.InvalidRequestError`."""
    if isinstance(value, OutputSchema):
        return value
    if isinstance(value, type) and issubclass(value, BaseModel):
        try:
            schema = value.model_json_schema()
        except Exception as error:  # pydantic refuses some types in a schema
            raise InvalidRequestError(
                f"response_format: {value.__name__} has no JSON schema: {error}"
            ) from None
        return _make(value.__name__, schema, value)
    if isinstance(value, Mapping):
        schema = dict(value)
        if schema.get("type") != "object":
            raise InvalidRequestError(
                'response_format: a JSON schema must describe an object ("type": "object")'
            )
        return _make(str(schema.get("title") or "response"), schema, None)
    raise InvalidRequestError(
        "response_format takes a pydantic model class or a JSON-schema dict for an object, "
        f"not {type(value).__name__}"
    )


def _make(name: str, schema: dict[str, Any], model: type[BaseModel] | None) -> OutputSchema:
    try:
        text = json.dumps(schema, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidRequestError(f"response_format: the schema is not JSON: {error}") from None
    wire_name = _NAME.sub("_", name).strip("_")[:64] or "response"
    return OutputSchema(wire_name, schema, model, text)


def _json_part(text: str) -> str:
    """The JSON in an answer: inside a code fence if there is one, else from the first ``{``
    or ``[`` to the last matching bracket (prose before or after is dropped)."""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    text = text.strip()
    starts = [index for index in (text.find("{"), text.find("[")) if index >= 0]
    if not starts:
        return text
    start = min(starts)
    end = text.rfind("}" if text[start] == "{" else "]")
    return text[start : end + 1] if end > start else text[start:]


def _pydantic_errors(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False)[:_MAX_ERRORS]:
        where = ".".join(str(part) for part in item["loc"])
        problems.append(f"{where or '$'}: {item['msg']}")
    return problems


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _is_type(value: object, name: str) -> bool:
    kinds = _TYPES.get(name)
    if kinds is None:
        return True  # an unknown type name is not checked
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, kinds)


def _validate(
    value: Any, schema: Any, root: Mapping[str, Any], where: str, errors: list[str], depth: int
) -> None:
    if not isinstance(schema, Mapping) or len(errors) >= _MAX_ERRORS or depth > 64:
        return
    schema = _resolve(schema, root)
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list) and options:
        for option in options:
            trial: list[str] = []
            _validate(value, option, root, where, trial, depth + 1)
            if not trial:
                break
        else:
            errors.append(f"{where}: matches none of the allowed shapes")
    kind = schema.get("type")
    if kind is not None:
        names = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, str(name)) for name in names):
            errors.append(f"{where}: expected {' or '.join(map(str, names))}, "
                          f"got {type(value).__name__}")  # fmt: skip
            return
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: must be {schema['const']!r}")
    if isinstance(value, dict):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        for name in required if isinstance(required, list) else []:
            if name not in value:
                errors.append(f"{where}.{name}: required")
        for name, item in value.items():
            if name in properties:
                _validate(item, properties[name], root, f"{where}.{name}", errors, depth + 1)
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}.{name}: not allowed (additionalProperties is false)")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _validate(item, schema["items"], root, f"{where}[{index}]", errors, depth + 1)
