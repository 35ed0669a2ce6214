"""The JSON body of ``POST /api/chat``, written directly from ``Client.chat``'s keyword
arguments when the ollama client would only copy them (no I/O).

``ollama.Client.chat`` validates its arguments into its own pydantic models (each message,
the request) and dumps them back to a dict (``model_dump(exclude_none=True)``) before httpx
writes the JSON: for the dicts :func:`~._wire.build_request` has just built, that is a second
conversion of the same payload, costing more than the rest of the provider's own work on a
call. For a call that needs none of the client's conversions (images to base64, tools and
tool calls through its models, options of another shape) the body is written here instead,
the same keys, values and order as the client's dump (checked by the tests against the
client's own), and sent through the client's own request method, which reads the answer
exactly as ``chat`` does. Any other call goes through ``chat``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["wire_body"]


def wire_body(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON body ``ollama.Client.chat(**kwargs)`` would send, or ``None`` when the call
    needs the client's own conversions (tools, images, tool calls, values it would coerce or
    refuse). The message dicts are reused where the client would send them unchanged."""
    if "tools" in kwargs or not kwargs["model"]:
        return None
    keep_alive = kwargs.get("keep_alive")
    if keep_alive is not None:
        if isinstance(keep_alive, int):
            keep_alive = float(keep_alive)  # as the client's model coerces it (True too)
        elif type(keep_alive) is not str and type(keep_alive) is not float:
            return None
    schema = kwargs.get("format")
    if schema is not None and type(schema) is not dict:
        return None
    messages: list[dict[str, Any]] = []
    for entry in kwargs["messages"]:
        if len(entry) == 2 and entry["content"]:
            messages.append(entry)  # role and text: sent as they are
            continue
        if "images" in entry or "tool_calls" in entry:
            return None
        # The client drops empty values (an empty text is not sent).
        messages.append({key: value for key, value in entry.items() if value})
    body: dict[str, Any] = {"model": kwargs["model"], "stream": kwargs["stream"],
                            "options": kwargs["options"]}  # fmt: skip
    if schema is not None:
        body["format"] = schema
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    body["messages"] = messages
    body["tools"] = []  # the client always sends its list of tools, empty or not
    return body
