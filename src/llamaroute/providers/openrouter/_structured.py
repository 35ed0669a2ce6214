"""``response_format=`` on OpenRouter's wire: a ``json_schema`` response format, served only by
upstreams that honour it (``provider.require_parameters``), or the schema as instructions on a
route without it."""

from __future__ import annotations

from typing import Any

from .._base import ProviderCall, with_schema_instruction

__all__ = ["add_response_format"]


def add_response_format(call: ProviderCall, payload: dict[str, Any]) -> None:
    """``response_format`` as a json_schema, served only by upstreams that honour it
    (``provider.require_parameters``); or, on a route without it, the schema as instructions."""
    schema = call.request.response_format
    if schema is None:
        return
    if call.route.structured_output_mechanism == "json_schema":
        payload["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema.name, "strict": True, "schema": schema.schema},
        }
        payload.setdefault("provider", {})["require_parameters"] = True
        return
    messages = payload["messages"]
    first = messages[0] if messages[0]["role"] == "system" else None
    if first is not None and isinstance(first["content"], str):
        first["content"] = with_schema_instruction(call, first["content"])
    elif (text := with_schema_instruction(call, None)) is not None:
        messages.insert(0, {"role": "system", "content": text})
