"""A fake AWS Bedrock runtime: Converse (JSON) and ConverseStream (binary event stream).

boto3 reaches it through ``endpoint_url`` with any dummy credentials, so a test runs boto3's
real request signing, response parsing and event-stream decoding against it.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote

from ._eventstream import corrupt, encode_message, event_frame, exception_frame
from ._script import Step, StreamPlan
from ._server import Exchange, FakeServer

__all__ = ["FakeBedrock", "RawReply"]


@dataclass(frozen=True)
class RawReply(Step):
    """A hostile answer for :class:`FakeBedrock`: bytes exactly as given, at the pace given.

    After ``delay``, the status line (``status``) and headers go out (one byte every
    ``trickle`` seconds too with ``slow_head``), then ``body`` in one write, then ``drip`` one
    byte every ``trickle`` seconds, then ``endless`` again and again until the client goes
    away. The body is chunked unless ``length`` gives a ``Content-Length`` (which may lie;
    ``-1``: none, the body ends when the connection does).
    ``body`` is a Converse JSON body or, on ``/converse-stream``, event-stream frames (see
    :meth:`FakeBedrock.event`).
    """

    body: bytes = b""
    drip: bytes = b""
    trickle: float = 0.05
    endless: bytes = b""
    length: int | None = None
    slow_head: bool = False
    content_type: str | None = None


#: The AWS error code a bare ``Step.error(status)`` answers with.
_STATUS_CODES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}

#: ``Step.finish_reason`` in the shared vocabulary -> Converse ``stopReason``.
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

_IMAGE_MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "webp": (b"RIFF",),
}

_ON_DEMAND = (
    "Invocation of model ID {model} with on-demand throughput isn\u2019t supported. Retry your "
    "request with the ID or ARN of an inference profile that contains this model."
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _lower_camel(code: str) -> str:
    return code[:1].lower() + code[1:]


class FakeBedrock(FakeServer):
    """A fake Bedrock runtime on 127.0.0.1. Point boto3 (or ``BedrockProvider``) at :attr:`url`::

        with FakeBedrock(Step.error(429), Step.reply("Hi")) as fake:
            provider = BedrockProvider(region="us-east-1", endpoint_url=fake.url,
                                       aws_access_key_id="AKIDEXAMPLE",
                                       aws_secret_access_key="secret")

    Serves ``POST /model/{modelId}/converse`` and ``/converse-stream``. Like Bedrock it
    refuses an unsigned request (403), a bare ``meta.`` foundation-model ID (the on-demand
    ``ValidationException``) and an image whose declared ``format`` does not match its bytes.
    Errors are REST-JSON: an ``x-amzn-ErrorType`` header and a ``{"message"}`` body.

    Step fields as in the other fakes, with Bedrock's meaning: ``error_type`` is the AWS code
    (``"ThrottlingException"``); ``error_after`` sends an exception event mid-stream, of type
    ``error_type`` (lowerCamel on the wire) or ``modelStreamErrorException``;
    ``malformed_after`` sends a frame with a bad CRC (``0`` on Converse: a truncated JSON
    body); ``omit_end`` leaves out ``messageStop`` and ``metadata``.
    """

    default_text: ClassVar[str] = "Hello from the fake Bedrock."

    @property
    def model_ids(self) -> list[str]:
        """The model ID of every Converse request received, URL-decoded, in order."""
        return [
            model_id
            for request in self.requests
            if (model_id := self._model_id(request.path.split("?", 1)[0])) is not None
        ]

    @property
    def tool_configs(self) -> list[dict[str, Any] | None]:
        """The ``toolConfig`` of every Converse request received (``None`` where there was
        none), in order."""
        return [
            body.get("toolConfig") if isinstance(body := request.json, dict) else None
            for request in self.requests
            if self._model_id(request.path.split("?", 1)[0]) is not None
        ]

    @staticmethod
    def _model_id(path: str) -> str | None:
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "model" and parts[3] in ("converse", "converse-stream"):
            return unquote(parts[2])
        return None

    def handle(self, exchange: Exchange) -> None:
        model_id = self._model_id(exchange.path)
        if exchange.request.method != "POST" or model_id is None:
            self._error(exchange, 404, "UnknownOperationException", "Unknown operation")
            return
        if not exchange.request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256"):
            self._error(exchange, 403, "MissingAuthenticationTokenException",
                        "Missing Authentication Token")  # fmt: skip
            return
        stream = exchange.path.endswith("/converse-stream")
        body = exchange.json if isinstance(exchange.json, dict) else {}
        refusal = self._refusal(model_id, body) or self._tool_refusal(body, stream)
        if refusal is not None:
            self._error(exchange, 400, "ValidationException", refusal)
            return
        step = self.next_step()
        if self.answer(exchange, step, stream=stream):
            return
        if isinstance(step, RawReply):
            self._raw(exchange, step, stream=stream)
            return
        if step.is_error:
            code = step.error_type or _STATUS_CODES.get(step.status, "InternalServerException")
            headers = dict(step.headers)
            if step.retry_after is not None:
                headers.setdefault("Retry-After", str(step.retry_after))
            self._error(exchange, step.status, code, step.message or f"fake {code}", headers)
            return
        chunks = self.chunks_for(step)
        usage = self.usage_for(step, body.get("messages"), chunks)
        if stream:
            self.play_stream(exchange, step, self._plan(step, chunks, usage),
                             "application/vnd.amazon.eventstream",
                             {"x-amzn-RequestId": "fake-request-1", **step.headers})  # fmt: skip
        elif step.malformed_after == 0:
            exchange.send(200, b'{"output":{"message":{"role":"assistant","content":[{"te')
        else:
            exchange.send(200, _dumps(self._converse(step, "".join(chunks), usage)),
                          {"x-amzn-RequestId": "fake-request-1", **step.headers})  # fmt: skip

    @staticmethod
    def event(event_type: str, payload: Any) -> bytes:
        """One ConverseStream event frame (``:message-type: event``), for a :class:`RawReply`."""
        return event_frame(event_type, payload)

    @staticmethod
    def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
        """One event-stream frame with these string headers and this raw payload (CRCs right)."""
        return encode_message(headers, payload)

    @staticmethod
    def _raw(exchange: Exchange, reply: RawReply, *, stream: bool) -> None:
        handler = exchange.handler
        handler.close_connection = True  # whatever was sent, this connection is spent
        kind = reply.content_type or (
            "application/vnd.amazon.eventstream" if stream else "application/json"
        )
        if reply.length is None:
            framing = "Transfer-Encoding: chunked\r\n"
        else:
            framing = f"Content-Length: {reply.length}\r\n" if reply.length >= 0 else ""
        extra = "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
        head = (
            f"HTTP/1.1 {reply.status} Fake\r\nContent-Type: {kind}\r\n{framing}"
            f"Connection: close\r\nx-amzn-RequestId: fake-request-1\r\n{extra}\r\n"
        ).encode("latin-1")
        out = handler.wfile

        def write(data: bytes) -> None:
            if not data:
                return
            out.write(data if reply.length is not None else b"%x\r\n%s\r\n" % (len(data), data))
            out.flush()

        def drip(data: bytes, chunk: bool) -> None:
            for index in range(len(data)):
                if index:
                    time.sleep(reply.trickle)
                (write if chunk else out.write)(data[index : index + 1])
                out.flush()

        if reply.slow_head:
            drip(head, chunk=False)
        else:
            out.write(head)
            out.flush()
        write(reply.body)
        if reply.drip:
            time.sleep(reply.trickle)
            drip(reply.drip, chunk=True)
        while reply.endless:
            write(reply.endless)
        if reply.length is None:
            out.write(b"0\r\n\r\n")
            out.flush()

    @staticmethod
    def _refusal(model_id: str, body: dict[str, Any]) -> str | None:
        # What Bedrock itself refuses, so that a test notices when we send it.
        if model_id.startswith("meta."):
            return _ON_DEMAND.format(model=model_id)
        for message in body.get("messages") or ():
            for block in message.get("content") or ():
                image = block.get("image") if isinstance(block, dict) else None
                if not isinstance(image, dict):
                    continue
                try:
                    data = base64.b64decode(image.get("source", {}).get("bytes", ""))
                except (binascii.Error, ValueError):
                    return "The image bytes are not valid base64."
                if not data.startswith(_IMAGE_MAGIC.get(str(image.get("format")), (b"\0\0",))):
                    return "The provided image does not match the specified image format."
        return None

    @staticmethod
    def _tool_refusal(body: dict[str, Any], stream: bool) -> str | None:
        # What Bedrock refuses of a tools request for Llama 3.2 (see providers/bedrock/_tools.py
        # for the sources): tool use in a stream, toolChoice other than auto, tool blocks with
        # no toolConfig, tool results mixed with other blocks, roles that do not alternate.
        config = body.get("toolConfig")
        if isinstance(config, dict):
            if stream:
                return "This model doesn't support tool use in streaming mode."
            choice = config.get("toolChoice") or {"auto": {}}
            if "auto" not in choice:
                field = next(iter(choice), "")
                return (f"This model doesn't support the toolConfig.toolChoice.{field} field. "
                        f"Remove toolConfig.toolChoice.{field} and try again.")  # fmt: skip
        roles = []
        for index, message in enumerate(body.get("messages") or ()):
            kinds = {key for block in message.get("content") or () for key in block}
            if kinds & {"toolUse", "toolResult"} and not isinstance(config, dict):
                return ("The toolConfig field must be defined when using toolUse and "
                        "toolResult content blocks.")  # fmt: skip
            if "toolResult" in kinds and kinds != {"toolResult"}:
                return (f"messages.{index}.content: Conversation blocks and tool result blocks "
                        "cannot be provided in the same turn.")  # fmt: skip
            roles.append(message.get("role"))
        if any(a == b for a, b in itertools.pairwise(roles)):
            return "A conversation must alternate between user and assistant roles."
        return None

    @staticmethod
    def _error(
        exchange: Exchange, status: int, code: str, message: str,
        headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        # Bedrock's REST-JSON errors: botocore reads the code from x-amzn-ErrorType (the part
        # before the colon) and the message from the body.
        exchange.send(status, _dumps({"message": message}), {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": "fake-request-1",
            **(headers or {}),
        })  # fmt: skip

    @staticmethod
    def _usage(usage: tuple[int, int]) -> dict[str, int]:
        return {"inputTokens": usage[0], "outputTokens": usage[1],
                "totalTokens": usage[0] + usage[1]}  # fmt: skip

    def _converse(self, step: Step, text: str, usage: tuple[int, int]) -> Any:
        content: list[dict[str, Any]] = [{"text": text}] if text or not step.tool_calls else []
        for index, call in enumerate(step.tool_calls or ()):
            # Arguments as an object go as the Document they are; text (bad JSON included)
            # as a JSON string, as a model that wrote text would have it passed on.
            content.append({"toolUse": {"toolUseId": call.get("id", f"tooluse_fake{index}"),
                                        "name": call.get("name"),
                                        "input": call.get("arguments", {})}})  # fmt: skip
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": _STOP_REASONS.get(step.finish_reason, step.finish_reason),
            "usage": self._usage(usage),
            "metrics": {"latencyMs": int(step.delay * 1000) + 42},
        }

    def _plan(self, step: Step, chunks: list[str], usage: tuple[int, int]) -> StreamPlan:
        code = _lower_camel(step.error_type or "ModelStreamErrorException")
        error: dict[str, Any] = {"message": step.message or f"fake {code} mid-stream"}
        if code == "modelStreamErrorException":
            error.update(originalStatusCode=500, originalMessage="the model failed mid-stream")
        stop = _STOP_REASONS.get(step.finish_reason, step.finish_reason)
        return StreamPlan(
            preamble=[event_frame("messageStart", {"role": "assistant"})],
            content=[
                event_frame("contentBlockDelta", {"delta": {"text": chunk}, "contentBlockIndex": 0})
                for chunk in chunks
            ],
            closing=[
                event_frame("contentBlockStop", {"contentBlockIndex": 0}),
                event_frame("messageStop", {"stopReason": stop}),
                event_frame(
                    "metadata", {"usage": self._usage(usage), "metrics": {"latencyMs": 42}}
                ),
            ],
            end_marker=2,
            error_frame=exception_frame(code, error),
            malformed_frame=corrupt(
                event_frame("contentBlockDelta", {"delta": {"text": "x"}, "contentBlockIndex": 0})
            ),
        )
