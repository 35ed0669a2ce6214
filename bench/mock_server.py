"""A fast loopback mock of the three providers, for benchmarks (run in its own process).

    python bench/mock_server.py --port 0      # prints "listening <port>" then serves

Raw asyncio HTTP/1.1 with keep-alive and pre-rendered responses, so that the server costs
as little as possible per request: a benchmark must measure the client, not the mock. Its
ceiling is reported by ``bench/run.py`` (raw httpx against it).

Speaks just enough of each wire format for a successful call:
  POST .../chat/completions        OpenRouter JSON, or SSE when the body has "stream": true;
                                   with "tools" (and no tool result yet) a call of the
                                   first tool, with "response_format" a JSON object
  POST /api/chat                   Ollama JSON, or NDJSON when "stream" is not false
  GET  /api/tags                   Ollama's installed models
  POST /model/<id>/converse        Bedrock Converse JSON
  POST /model/<id>/converse-stream Bedrock ConverseStream (AWS event stream)
  GET  /refused                    (no such route: 404)

Streams have ``CHUNKS`` text chunks. Nothing here is used by the tests or the package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable

CHUNKS = 50
TEXT = "Llamas are members of the camelid family and hum to communicate."
WORDS = [("" if i == 0 else " ") + w for i, w in enumerate(TEXT.split(" "))]
PIECES = [WORDS[i % len(WORDS)] for i in range(CHUNKS)]
# OpenRouter's usage.cost as llamaroute's price table gives it for llama-3.2-3b (USD 0.0509
# per million tokens in, 0.335 out; `llamaroute prices`), so that the stale-price check stays
# quiet and every client is measured on the usual path. Update it when the table moves: a
# reported cost far from the table's makes llamaroute warn and add the two figures to each
# answer, work a real call does not do.
USD_IN, USD_OUT = 0.0509e-6, 0.335e-6


def _cost(prompt_tokens: int, completion_tokens: int) -> float:
    return round(prompt_tokens * USD_IN + completion_tokens * USD_OUT, 12)


def _http(status: str, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def _chunked(content_type: bytes, frames: list[bytes]) -> bytes:
    out = [b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type
           + b"\r\ntransfer-encoding: chunked\r\n\r\n"]  # fmt: skip
    out += [b"%x\r\n%s\r\n" % (len(frame), frame) for frame in frames]
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def _openrouter_json() -> bytes:
    body = {
        "id": "gen-bench", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": TEXT}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 14, "total_tokens": 26,
                  "cost": _cost(12, 14)},
    }  # fmt: skip
    return _http("200 OK", b"application/json", json.dumps(body).encode())


#: The structured answer (``response_format``) and the tool call's arguments: the same object.
STRUCTURED = {"city": "Cusco", "llamas": 42}


def _openrouter_answer(message: dict[str, object], finish: str) -> bytes:
    body = {
        "id": "gen-bench", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 14, "total_tokens": 54,
                  "cost": _cost(40, 14)},
    }  # fmt: skip
    return _http("200 OK", b"application/json", json.dumps(body).encode())


def _openrouter_tool_call() -> bytes:
    call = {
        "id": "call_bench",
        "type": "function",
        "function": {"name": "count_llamas", "arguments": json.dumps(STRUCTURED)},
    }
    return _openrouter_answer({"role": "assistant", "content": None, "tool_calls": [call]},
                              "tool_calls")  # fmt: skip


def _openrouter_structured() -> bytes:
    return _openrouter_answer({"role": "assistant", "content": json.dumps(STRUCTURED)}, "stop")


def _openrouter_sse() -> bytes:
    def event(payload: object) -> bytes:
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    # As OpenRouter sends them: every chunk has id, object, created and model.
    head = {"id": "gen-bench", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    frames = [b": OPENROUTER PROCESSING\n\n"]
    for piece in PIECES:
        frames.append(event({**head, "choices": [{"index": 0, "delta": {"content": piece},
                                                  "finish_reason": None}]}))  # fmt: skip
    frames.append(event({**head, "choices": [{"index": 0, "delta": {},
                                              "finish_reason": "stop"}]}))  # fmt: skip
    frames.append(event({**head, "choices": [],
                         "usage": {"prompt_tokens": 12, "completion_tokens": CHUNKS,
                                   "cost": _cost(12, CHUNKS)}}))  # fmt: skip
    frames.append(b"data: [DONE]\n\n")
    return _chunked(b"text/event-stream", frames)


def _ollama_json() -> bytes:
    body = {"model": "llama3.2:3b", "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": TEXT}, "done": True,
            "done_reason": "stop", "prompt_eval_count": 12, "eval_count": 14,
            "total_duration": 1000, "eval_duration": 500}  # fmt: skip
    return _http("200 OK", b"application/json", json.dumps(body).encode())


def _ollama_ndjson() -> bytes:
    frames = [
        json.dumps({"model": "llama3.2:3b", "created_at": "2026-01-01T00:00:00Z",
                    "message": {"role": "assistant", "content": piece}, "done": False}).encode()
        + b"\n"
        for piece in PIECES
    ]  # fmt: skip
    frames.append(json.dumps({"model": "llama3.2:3b", "created_at": "2026-01-01T00:00:00Z",
                              "message": {"role": "assistant", "content": ""}, "done": True,
                              "done_reason": "stop", "prompt_eval_count": 12,
                              "eval_count": CHUNKS}).encode() + b"\n")  # fmt: skip
    return _chunked(b"application/x-ndjson", frames)


def _ollama_tags() -> bytes:
    tags = ("llama3.2:1b", "llama3.2:3b", "llama3.2-vision:11b", "llama3.2-vision:90b")
    models = [{"name": tag, "model": tag} for tag in tags]
    return _http("200 OK", b"application/json", json.dumps({"models": models}).encode())


def _bedrock_json() -> bytes:
    body = {"output": {"message": {"role": "assistant", "content": [{"text": TEXT}]}},
            "stopReason": "end_turn", "usage": {"inputTokens": 12, "outputTokens": 14,
                                                "totalTokens": 26},
            "metrics": {"latencyMs": 1}}  # fmt: skip
    return _http("200 OK", b"application/json", json.dumps(body).encode())


def _bedrock_stream() -> bytes | None:
    try:
        # The event-stream encoder behind FakeBedrock is not public API; borrowed rather than
        # copied (the one private import outside tests/, allowed in tests/test_layers.py).
        from llamaroute.testing._eventstream import event_frame as encode_event
    except ImportError:
        return None
    frames = [encode_event("messageStart", {"role": "assistant"})]
    frames += [encode_event("contentBlockDelta", {"contentBlockIndex": 0,
                                                 "delta": {"text": piece}})
               for piece in PIECES]  # fmt: skip
    frames += [
        encode_event("contentBlockStop", {"contentBlockIndex": 0}),
        encode_event("messageStop", {"stopReason": "end_turn"}),
        encode_event("metadata", {"usage": {"inputTokens": 12, "outputTokens": CHUNKS,
                                            "totalTokens": 12 + CHUNKS},
                                  "metrics": {"latencyMs": 1}}),
    ]  # fmt: skip
    return _chunked(b"application/vnd.amazon.eventstream", frames)


NOT_FOUND = _http("404 Not Found", b"application/json", b'{"error":"not found"}')


def _responses() -> Callable[[bytes, bytes, bytes], bytes]:
    openrouter_json, openrouter_sse = _openrouter_json(), _openrouter_sse()
    tool_call, structured = _openrouter_tool_call(), _openrouter_structured()
    ollama_json, ollama_ndjson, tags = _ollama_json(), _ollama_ndjson(), _ollama_tags()
    bedrock_json, bedrock_stream = _bedrock_json(), _bedrock_stream() or NOT_FOUND

    def respond(method: bytes, path: bytes, body: bytes) -> bytes:
        streaming = b'"stream":true' in body.replace(b" ", b"")
        if path.endswith(b"/chat/completions"):
            if streaming:
                return openrouter_sse
            if b'"tools"' in body and b'"tool"' not in body:  # no tool result yet
                return tool_call
            if b'"response_format"' in body:
                return structured
            return openrouter_json
        if path == b"/api/chat":
            return ollama_json if b'"stream":false' in body.replace(b" ", b"") else ollama_ndjson
        if path == b"/api/tags":
            return tags
        if path.endswith(b"/converse-stream"):
            return bedrock_stream
        if path.endswith(b"/converse"):
            return bedrock_json
        return NOT_FOUND

    return respond


async def _serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, respond: Callable[..., bytes]
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, _, headers = head.partition(b"\r\n")
            method, path, _ = request_line.split(b" ", 2)
            length = 0
            for line in headers.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            writer.write(respond(method, path.split(b"?", 1)[0], body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _main(port: int) -> None:
    respond = _responses()
    server = await asyncio.start_server(
        lambda r, w: _serve_connection(r, w, respond), "127.0.0.1", port, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()  # faster when present (it comes with the dev extra's llmock)
    except ImportError:
        pass
    try:
        asyncio.run(_main(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
