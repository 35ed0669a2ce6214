"""Tools: what a caller offers the model (:class:`Tool`), and what the model asks for
(:class:`ToolCall`), in one shape whatever the wire.

A tool is given as a plain Python function (its schema comes from the type hints through
pydantic, its description from the docstring's first paragraph and the ``Args:`` section), a
pydantic model (its JSON schema is the argument schema), an OpenAI-format dict
(``{"type": "function", "function": {name, description, parameters}}``) or a :class:`Tool`.
A bad definition raises :class:`~llamaroute.InvalidToolError` before any request.

Small models write bad JSON: a tool call whose arguments do not parse, are not an object or do
not match the tool's schema is still returned, with :attr:`ToolCall.error` set (a
:class:`~llamaroute.ToolCallError`) and the text as the model wrote it in
:attr:`ToolCall.raw_arguments`. Nothing about a tool call ever raises from inside a call.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import CoreSchema, core_schema

from ._exceptions import InvalidToolError, ToolCallError
from ._records import validation_message

__all__ = [
    "MAX_ARGUMENTS_CHARS",
    "MAX_TOOLS",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "check_tool_choice",
    "coerce_tools",
    "make_tool_call",
]

#: The most tools one request may carry (OpenAI's limit is 128; more is a mistake).
MAX_TOOLS = 128
#: Arguments longer than this (characters) are not parsed: a tool call is a small object, and
#: a huge one is a runaway model or a hostile server.
MAX_ARGUMENTS_CHARS = 1_000_000

ToolChoice = Literal["auto", "none", "required"] | str
"""``"auto"`` (the model decides), ``"none"``, ``"required"`` or the name of one tool."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: ``name``, ``description`` and ``parameters`` (a JSON
    schema of type ``object``). Build one with :meth:`from_function`, :meth:`from_model` or
    :meth:`from_dict`, or pass any of those forms straight to ``tools=``."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    validator: TypeAdapter[Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # Carried inside llamaroute's pydantic models as is (checked where they are built).
        return core_schema.is_instance_schema(cls)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidToolError(
                f"tool name {self.name!r} must be 1-64 letters, digits, '_' or '-'"
            )
        if not isinstance(self.description, str):
            raise InvalidToolError(f"tool {self.name}: description must be a string")
        schema = self.parameters
        if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
            raise InvalidToolError(f"tool {self.name}: parameters must be a JSON schema object")
        try:
            json.dumps(schema)
        except (TypeError, ValueError):
            raise InvalidToolError(f"tool {self.name}: parameters are not JSON") from None

    def openai(self) -> dict[str, Any]:
        """The tool in OpenAI's (and OpenRouter's, and Ollama's) wire format."""
        function: dict[str, Any] = {"name": self.name, "parameters": dict(self.parameters)}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    @classmethod
    def from_function(cls, function: Callable[..., Any]) -> Tool:
        """A tool from a function's signature (type hints, through pydantic) and docstring."""
        name = getattr(function, "__name__", "")
        try:
            hints = get_type_hints(function)
            signature = inspect.signature(function)
        except Exception as error:  # unresolvable hints, a builtin without a signature
            raise InvalidToolError(f"tool {name!r}: cannot read its signature: {error}") from None
        summary, documented = _docstring(inspect.getdoc(function) or "")
        fields: dict[str, Any] = {}
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise InvalidToolError(f"tool {name!r}: *args and **kwargs cannot be described")
            hint = hints.get(parameter.name, Any)
            default = ... if parameter.default is parameter.empty else parameter.default
            description = documented.get(parameter.name)
            fields[parameter.name] = (hint, _field(default, description))
        try:
            model = create_model(name or "tool", __config__=ConfigDict(), **fields)
            schema = model.model_json_schema()
        except Exception as error:  # a hint pydantic cannot turn into a schema
            raise InvalidToolError(f"tool {name!r}: {error}") from None
        return cls(name, summary, _inline(schema), TypeAdapter(model))

    @classmethod
    def from_model(cls, model: type[BaseModel]) -> Tool:
        """A tool whose arguments are the pydantic ``model`` (named after it, described by
        its docstring)."""
        try:
            schema = model.model_json_schema()
        except Exception as error:
            raise InvalidToolError(f"tool {model.__name__!r}: {error}") from None
        summary = schema.pop("description", "") or ""
        return cls(model.__name__, summary, _inline(schema), TypeAdapter(model))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tool:
        """A tool from an OpenAI-format dict (or the bare ``function`` object of one)."""
        is_function = data.get("type", "function") == "function"
        function = data.get("function", data) if is_function else None
        if not isinstance(function, Mapping):
            raise InvalidToolError("a tool dict is {'type': 'function', 'function': {...}}")
        unknown = set(function) - {"name", "description", "parameters", "strict"}
        if unknown:
            raise InvalidToolError(f"tool dict has unknown fields: {', '.join(sorted(unknown))}")
        if "name" not in function:
            raise InvalidToolError("a tool needs a name")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        return cls(function["name"], function.get("description") or "", parameters)


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's schema made plain for small models and simple wires: ``$ref`` replaced by
    the definition it points to, ``$defs`` and the generated ``title`` keys left out."""
    definitions = schema.get("$defs", {})

    def plain(node: Any, depth: int) -> Any:
        if depth > 32:
            raise InvalidToolError("a tool's schema refers to itself (a recursive model)")
        if isinstance(node, list):
            return [plain(item, depth + 1) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return plain(definitions.get(ref.removeprefix("#/$defs/"), {}), depth + 1)
        result = {}
        for key, value in node.items():
            if key in ("properties", "patternProperties") and isinstance(value, dict):
                # A map of names to schemas: a parameter may well be called "title".
                result[key] = {name: plain(item, depth + 1) for name, item in value.items()}
            elif key not in ("$defs", "title"):
                result[key] = plain(value, depth + 1)
        return result

    result: dict[str, Any] = plain(schema, 0)
    return result


def _field(default: Any, description: str | None) -> Any:
    return Field(default, description=description) if description else Field(default)


def _docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph, and each parameter's line from a Google-style ``Args:`` section."""
    summary = doc.split("\n\n", 1)[0].strip().replace("\n", " ")
    described: dict[str, str] = {}
    lines = doc.splitlines()
    if "Args:" in (line.strip() for line in lines):
        start = [line.strip() for line in lines].index("Args:") + 1
        for line in lines[start:]:
            if line.strip() and not line.startswith((" ", "\t")):
                break
            match = re.match(r"\s+(\w+)(?:\s*\(.*?\))?:\s*(.+)", line)
            if match:
                described[match.group(1)] = match.group(2).strip()
    return summary, described


def coerce_tools(tools: object) -> tuple[Tool, ...]:
    """``tools=`` as :class:`Tool` objects; :class:`InvalidToolError` for anything wrong (an
    unknown form, a missing name, a schema that is not an object, two tools with one name)."""
    if tools is None:
        return ()
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, list | tuple):
        raise InvalidToolError(f"tools must be a list, not {type(tools).__name__}")
    if len(tools) > MAX_TOOLS:
        raise InvalidToolError(f"at most {MAX_TOOLS} tools per request")
    result: list[Tool] = []
    for item in cast("list[object] | tuple[object, ...]", tools):
        if isinstance(item, Tool):
            result.append(item)
        elif isinstance(item, type) and issubclass(item, BaseModel):
            result.append(_described(item))
        elif isinstance(item, Mapping):
            result.append(Tool.from_dict(cast("Mapping[str, Any]", item)))
        elif callable(item):
            result.append(_described(item))
        else:
            raise InvalidToolError(
                "a tool is a function, a pydantic model, an OpenAI-format dict or a "
                f"llamaroute.Tool, not {type(item).__name__}"
            )
    names = [tool.name for tool in result]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise InvalidToolError(f"two tools are named {', '.join(duplicates)}")
    return tuple(result)


def _described(item: Callable[..., Any]) -> Tool:
    """The tool of a function or a pydantic model, described once: building its schema
    through pydantic takes about a millisecond, and the same functions are passed call after
    call. Remembered by the object (bounded: the cache only saves time; an unhashable
    callable is described every time)."""
    try:
        hash(item)
    except TypeError:
        return _describe(item)
    return _remembered(item)


def _describe(item: Callable[..., Any]) -> Tool:
    if isinstance(item, type) and issubclass(item, BaseModel):
        return Tool.from_model(item)
    return Tool.from_function(item)


_remembered = functools.lru_cache(maxsize=256)(_describe)


def check_tool_choice(choice: object, tools: tuple[Tool, ...]) -> str | None:
    """``tool_choice=`` checked against the tools: a mode or the name of one of them."""
    if choice is None:
        return None
    if not isinstance(choice, str):
        raise InvalidToolError(f"tool_choice must be a string, not {type(choice).__name__}")
    if not tools:
        raise InvalidToolError("tool_choice needs tools=")
    if choice in ("auto", "none", "required") or choice in {tool.name for tool in tools}:
        return choice
    raise InvalidToolError(
        f"tool_choice must be 'auto', 'none', 'required' or a tool's name, not {choice!r}"
    )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is the parsed object (``{}`` when it could
    not be read); ``raw_arguments`` the text as the model wrote it. ``error`` is a
    :class:`~llamaroute.ToolCallError` when the arguments are not JSON, not an object, or do
    not match the tool's schema (or the tool is not one that was offered), else ``None``.
    ``id`` is the provider's id, or a stable ``call_<n>`` where the provider issues none.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str
    error: ToolCallError | None = None

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # Carried inside llamaroute's pydantic models as is (checked where they are built).
        return core_schema.is_instance_schema(cls)

    @property
    def ok(self) -> bool:
        """Whether the arguments were read and match the tool's schema."""
        return self.error is None


def make_tool_call(
    call_id: object, name: object, arguments: object, tools: tuple[Tool, ...] = (), index: int = 0
) -> ToolCall:
    """A :class:`ToolCall` from what a server sent: ``arguments`` as JSON text (OpenAI) or an
    object (Ollama); an ``id`` that is missing becomes ``call_<index>``. Never raises:
    whatever is wrong (a missing name included) is the call's :attr:`~ToolCall.error`."""
    if not isinstance(call_id, str) or not call_id or len(call_id) > 256:
        call_id = f"call_{index}"
    raw, parsed, problem = _arguments(arguments)
    if not isinstance(name, str) or not name or len(name) > 256:
        kind = "null" if name is None else type(name).__name__
        name, problem = "", ("malformed", f"the tool call has no name ({kind})")
    if problem is None:
        assert parsed is not None
        problem = _check_against(name, parsed, tools)
    kind, why = problem if problem else ("", "")
    error = ToolCallError(f"tool call {name!r}: {why}", kind=kind, name=name, raw_arguments=raw) \
        if problem else None  # fmt: skip
    return ToolCall(call_id, name, parsed or {}, raw, error)


def _arguments(value: object) -> tuple[str, dict[str, Any] | None, tuple[str, str] | None]:
    if isinstance(value, dict):
        try:
            return json.dumps(value, ensure_ascii=False), value, None
        except (TypeError, ValueError):
            return "", None, ("invalid_json", "the arguments are not JSON")
    if value is None:
        return "", {}, None  # no arguments: a call of a function that takes none
    if not isinstance(value, str):
        return "", None, ("invalid_json", f"the arguments are a {type(value).__name__}")
    if len(value) > MAX_ARGUMENTS_CHARS:
        return value[:1000], None, ("too_large", f"the arguments are over {MAX_ARGUMENTS_CHARS:,}"
                                    " characters")  # fmt: skip
    if not value.strip():
        return value, {}, None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError) as error:
        return value, None, ("invalid_json", f"the arguments are not valid JSON ({error})")
    if not isinstance(parsed, dict):
        return value, None, ("not_an_object", f"the arguments are a JSON {type(parsed).__name__}")
    return value, parsed, None


def _check_against(
    name: str, arguments: dict[str, Any], tools: tuple[Tool, ...]
) -> tuple[str, str] | None:
    if not tools:
        return None
    tool = next((tool for tool in tools if tool.name == name), None)
    if tool is None:
        return "unknown_tool", f"no tool of that name was offered ({len(tools)} were)"
    if tool.validator is not None:
        try:
            tool.validator.validate_python(arguments)
        except ValidationError as error:
            return "schema_mismatch", validation_message(error)
        except Exception as error:  # a validator of the user's own that fails oddly
            return "schema_mismatch", type(error).__name__
        return None
    return _basic_check(tool.parameters, arguments)


def _basic_check(schema: Mapping[str, Any], arguments: dict[str, Any]) -> tuple[str, str] | None:
    """The checks a hand-written schema gets: required keys, and each property's JSON type."""
    missing = [key for key in schema.get("required", ()) if key not in arguments]
    if missing:
        return "schema_mismatch", f"missing required argument(s): {', '.join(map(str, missing))}"
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return None
    for key, value in arguments.items():
        spec = properties.get(key)
        if spec is None:
            if schema.get("additionalProperties") is False:
                return "schema_mismatch", f"unexpected argument {key!r}"
            continue
        wanted = spec.get("type") if isinstance(spec, Mapping) else None
        names = [wanted] if isinstance(wanted, str) else wanted if isinstance(wanted, list) else []
        kinds = tuple(kind for name in names for kind in _JSON_TYPES.get(str(name), ()))
        if kinds and (not isinstance(value, kinds) or _bool_as_number(value, names)):
            return "schema_mismatch", f"{key}: expected {' or '.join(map(str, names))}"
    return None


def _bool_as_number(value: object, names: list[Any]) -> bool:
    return isinstance(value, bool) and "boolean" not in names
