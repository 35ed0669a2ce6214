"""Keeping AWS secrets out of botocore's own log records.

With DEBUG logging on, botocore logs each signed request's canonical form and headers (the
session token in ``X-Amz-Security-Token``) and each response body (which an upstream may
fill with whatever it was sent). llamaroute does not turn that logging on, but an
application that logs everything at DEBUG would write a Bedrock provider's secrets to its
logs. Each provider adds its :class:`~._redact.Redactor` to a filter on botocore's loggers,
which rewrites a record's message (and its traceback) with every live provider's secrets
masked. A logger's filters run only for records it is enabled for: with DEBUG off this costs
nothing.
"""

from __future__ import annotations

import logging
import weakref
from typing import Protocol

__all__ = ["scrub_botocore_logs"]

#: The loggers whose records can carry a request's headers or a response's body. Loggers of
#: these packages that exist when a provider builds its client are filtered too.
_LOGGERS = ("botocore.auth", "botocore.endpoint", "botocore.parsers", "botocore.hooks",
            "botocore.httpsession", "botocore.awsrequest", "botocore.retryhandler",
            "botocore.regions", "botocore.client", "botocore.credentials", "botocore.utils",
            "urllib3.connectionpool", "urllib3.connection")  # fmt: skip
_PACKAGES = ("botocore", "boto3", "urllib3")

_FORMATTER = logging.Formatter()


class _Redacts(Protocol):
    def __call__(self, text: str) -> str: ...


class SecretScrubber(logging.Filter):
    """A filter that masks the secrets of every live Bedrock provider in a record."""

    def __init__(self) -> None:
        super().__init__()
        self._redactors: weakref.WeakSet[_Redacts] = weakref.WeakSet()

    def add(self, redactor: _Redacts) -> None:
        self._redactors.add(redactor)

    def _redact(self, text: str) -> str:
        for redactor in list(self._redactors):
            text = redactor(text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
            clean = self._redact(message)
            if clean != message:
                record.msg, record.args = clean, None
            if record.exc_info and not record.exc_text:
                record.exc_text = self._redact(_FORMATTER.formatException(record.exc_info))
        except Exception:  # a record that cannot be read is dropped rather than shown
            return False
        return True


def scrub_botocore_logs(redactor: _Redacts) -> None:
    """Add ``redactor`` to the secret filter of botocore's loggers (made once per logger)."""
    names = set(_LOGGERS)
    names.update(
        name for name in list(logging.Logger.manager.loggerDict)
        if name.split(".", 1)[0] in _PACKAGES
    )  # fmt: skip
    for name in sorted(names):
        logger = logging.getLogger(name)
        scrubber = next((f for f in logger.filters if isinstance(f, SecretScrubber)), None)
        if scrubber is None:
            scrubber = SecretScrubber()
            logger.addFilter(scrubber)
        scrubber.add(redactor)
