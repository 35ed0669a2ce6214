"""Keeping AWS secrets out of the Bedrock provider's errors, and out of their cause chains.

An upstream may echo what it was sent (the session token header, the signature) or what it
knows (the secret key) in an error body; botocore puts that text in a ``ClientError``'s
message and ``response``, and a standard traceback prints the chained cause. So the provider
redacts every value it knows to be secret, wherever its credentials came from (arguments,
environment, profile, role), plus the signing parts a request carried, and scrubs the chain
before chaining it; a chain it cannot clean is dropped, its error code and type name kept in
the message.
"""

from __future__ import annotations

import inspect
import os
import re
import traceback
from collections.abc import Callable, Iterable, Mapping, MutableMapping, MutableSequence
from typing import Any

from ..._secrets import Secret

__all__ = ["ENV_SECRETS", "Redactor", "credential_values", "request_secrets"]

#: Environment variables whose values are AWS secrets (or identify them).
ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
               "AWS_ACCESS_KEY_ID", "AWS_BEARER_TOKEN_BEDROCK")  # fmt: skip

# A labelled secret, as a request or a config file spells it: the value after the label goes.
_LABELLED = re.compile(
    r"(?i)(?:(?:x-amz-security-token|x-amz-signature|x-amz-credential|signature|credential|"
    r"aws_secret_access_key|aws_session_token|secretaccesskey|sessiontoken)"
    r"[\"']?\s*[:=]\s*[\"']?|bearer\s+)(?P<value>[A-Za-z0-9/+=%._~-]{8,})"
)


def _mask_labelled(match: re.Match[str]) -> str:
    return match.group(0)[: match.start("value") - match.start(0)] + "[redacted]"


#: Shorter values are not treated as secrets (they would redact ordinary words).
_MIN_SECRET = 8


def credential_values(credentials: object) -> list[str]:
    """The key ID, secret key and token of a botocore credentials object, read without
    refreshing it (a refresh could reach the network)."""
    values = []
    for name in ("access_key", "secret_key", "token"):
        for attribute in (name, f"_{name}"):
            if isinstance(inspect.getattr_static(credentials, attribute, None), property):
                continue
            value = getattr(credentials, attribute, None)
            if isinstance(value, str) and value:
                values.append(value)
    return values


def request_secrets(headers: Mapping[str, Any]) -> list[str]:
    """The secret parts of one signed request's headers: its session token, its signature and
    its credential scope (key ID included), or its bearer token."""
    found = []
    for name, raw in headers.items():
        value = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
        lowered = str(name).lower()
        if lowered == "x-amz-security-token":
            found.append(value)
        elif lowered == "authorization":
            found += [match.group("value") for match in _LABELLED.finditer(value)]
    return [value for value in found if len(value) >= _MIN_SECRET]


class Redactor:
    """Scrubs the secrets a Bedrock provider knows of from text and from exception chains.

    ``explicit`` are the provider's own :class:`Secret` objects; ``resolved`` returns the
    credentials botocore resolved, if any (read when needed: they may rotate); the
    environment's AWS secrets are read when needed too.
    """

    def __init__(
        self,
        explicit: Iterable[Secret],
        resolved: Callable[[], object | None],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._explicit = [secret for secret in explicit if secret]
        self._resolved = resolved
        self._environ = os.environ if environ is None else environ

    def secrets(self, extra: Iterable[str] = ()) -> list[Secret]:
        """Every secret value known now, longest first (so no value is left half-masked)."""
        values = {secret.reveal() for secret in self._explicit}
        values.update(value for name in ENV_SECRETS if (value := self._environ.get(name)))
        try:
            credentials = self._resolved()
        except Exception:  # redaction must never fail; what it cannot read it cannot show
            credentials = None
        if credentials is not None:
            values.update(credential_values(credentials))
        values.update(extra)
        ordered = sorted((v for v in values if len(v) >= _MIN_SECRET), key=len, reverse=True)
        return [Secret(value) for value in ordered]

    def bind(self, extra: Iterable[str] = ()) -> Callable[[str], str]:
        """A function that redacts ``text`` of every secret known now, and ``extra``."""
        secrets = self.secrets(extra)

        def redact(text: str) -> str:
            for secret in secrets:
                text = secret.redact(text)
            return _LABELLED.sub(_mask_labelled, text)

        redact.secrets = secrets  # type: ignore[attr-defined]
        return redact

    def __call__(self, text: str) -> str:
        return self.bind()(text)

    @staticmethod
    def clean_chain(error: BaseException, redact: Callable[[str], str]) -> bool:
        """Scrub ``error`` and every exception chained under it in place (messages, botocore's
        ``response`` and ``kwargs``, notes); ``True`` if a standard traceback of it now shows
        no known secret, else the chain should be dropped."""
        stack: list[BaseException] = [error]
        seen: set[int] = set()
        while stack:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            try:
                current.args = tuple(
                    redact(arg) if isinstance(arg, str) else arg for arg in current.args
                )
                for name in ("response", "kwargs"):
                    value = getattr(current, name, None)
                    if isinstance(value, MutableMapping):
                        _scrub(value, redact)
                notes = getattr(current, "__notes__", None)
                if isinstance(notes, MutableSequence):
                    notes[:] = [redact(str(note)) for note in notes]
            except Exception:  # an exception that will not be scrubbed: the check decides
                pass
            stack += [e for e in (current.__cause__, current.__context__) if e is not None]
        secrets: list[Secret] = getattr(redact, "secrets", [])
        try:
            shown = "".join(traceback.format_exception(error))
        except Exception:
            return False
        return not any(secret.reveal() in shown for secret in secrets)


def _scrub(data: MutableMapping[Any, Any], redact: Callable[[str], str]) -> None:
    for key, value in list(data.items()):
        if isinstance(value, str):
            data[key] = redact(value)
        elif isinstance(value, bytes):
            data[key] = redact(value.decode("utf-8", "replace")).encode()
        elif isinstance(value, MutableMapping):
            _scrub(value, redact)
