"""One Redis connection for a client's fleet state: short timeouts, a pause after a failure,
one warning per outage, and the Lua scripts loaded by hash.

Every use goes through :meth:`RedisConnection.run`, which returns the script's answer or
raises :class:`RedisDown` (never a ``redis`` exception): the callers then fall back (breakers,
rate limits) or refuse (budgets). After a failure Redis is left alone for ``retry_s`` seconds,
so a dead server costs a call nothing; the next try after that reconnects (redis-py opens a
new connection on demand), which is all "reconnection" needs.

Writes whose answer nobody waits for (the ``fastest`` strategy's latency samples) go through
:meth:`RedisConnection.run_later`: they are queued and sent in the same round trip as the
next :meth:`~RedisConnection.run` (a pipeline), so that a call costs one round trip, not one
per write; a queued write waits at most ``LATER_S`` for a ride before it is sent on its own.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from contextlib import suppress
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["RedisConnection", "RedisDown", "is_redis_url"]

logger = logging.getLogger("llamaroute")

_PREFIXES = ("redis://", "rediss://", "unix://")


#: Longest a queued write (:meth:`RedisConnection.run_later`) waits for the next round trip.
LATER_S = 1.0
#: Queued writes kept at most (beyond that the oldest are dropped: they are best-effort).
_MAX_LATER = 1_000

_Script = tuple[str, str, list[str], list[object]]  # name, source, keys, args


def is_redis_url(value: object) -> bool:
    """Whether ``value`` is a Redis URL (``redis://``, ``rediss://`` or ``unix://``)."""
    return isinstance(value, str) and value.startswith(_PREFIXES)


def _redacted(url: str) -> str:
    head, sep, rest = url.partition("://")
    _, at, host = rest.partition("@")
    return f"{head}{sep}***@{host}" if at else url


class RedisDown(Exception):
    """Redis could not be reached or failed (internal: callers fall back or refuse)."""


class RedisConnection:
    """A client's Redis connection and namespace (``llamaroute:<prefix>:``)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        socket_timeout: float = 0.5,
        retry_s: float = 1.0,
    ) -> None:
        if not is_redis_url(url):
            raise ConfigurationError(f"not a Redis URL: {url!r} (redis://host:6379/0)")
        if ":" in prefix or "{" in prefix or " " in prefix:
            raise ConfigurationError(f"a key prefix takes no ':', '{{' or spaces: {prefix!r}")
        if not socket_timeout > 0 or not retry_s > 0:
            raise ConfigurationError("socket_timeout and retry_s must be > 0 seconds")
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ConfigurationError(
                "fleet state on Redis needs the redis package: pip install 'llamaroute[redis]'"
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._no_script: type[BaseException] = redis.exceptions.NoScriptError
        self.url = _redacted(url)
        self.namespace = f"llamaroute:{prefix}:" if prefix else "llamaroute:"
        #: This process's token: it marks the half-open probes this process holds.
        self.token = uuid.uuid4().hex
        self.retry_s = float(retry_s)
        try:
            self._redis: Any = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 0),  # no hidden retries: a failure is handled here
                retry_on_timeout=False,
                decode_responses=True,
            )
        except (ValueError, *self._errors) as error:
            raise ConfigurationError(f"bad Redis URL {self.url}: {error}") from None
        self._scripts: dict[str, str] = {}  # name -> sha
        self._later: deque[_Script] = deque(maxlen=_MAX_LATER)
        self._later_since = 0.0
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()
        #: How many times Redis failed (for diagnosis).
        self.failures = 0
        #: The last failure, as ``"ErrorType: message"``.
        self.last_error: str | None = None

    def key(self, *parts: str) -> str:
        """A namespaced key."""
        return self.namespace + ":".join(parts)

    @property
    def available(self) -> bool:
        """Whether Redis may be tried now (not within ``retry_s`` of a failure)."""
        return time.monotonic() >= self._down_until

    def run(self, name: str, source: str, keys: list[str], args: list[object]) -> Any:
        """Run the Lua script ``source`` (cached by ``name``), with the queued writes in the
        same round trip; raises :class:`RedisDown`."""
        if not self.available:
            raise RedisDown(self.last_error or "Redis is unreachable")
        try:
            result = self._send([*self._drain(), (name, source, keys, args)])[-1]
        except self._errors as error:
            self._failed(error)
            raise RedisDown(self.last_error) from None
        self._recovered()
        return result

    def run_later(self, name: str, source: str, keys: list[str], args: list[object]) -> None:
        """Queue a write whose answer is not needed: it is sent with the next :meth:`run`, or
        on its own once it has waited ``LATER_S``. Best-effort: lost if Redis is down."""
        if not self._later:
            self._later_since = time.monotonic()
        self._later.append((name, source, keys, args))
        if time.monotonic() - self._later_since >= LATER_S and self.available:
            with suppress(*self._errors):
                self._send(self._drain())

    def _drain(self) -> list[_Script]:
        drained: list[_Script] = []
        with suppress(IndexError):  # another thread may drain at the same time
            while True:
                drained.append(self._later.popleft())
        return drained

    def _sha(self, name: str, source: str) -> str:
        sha = self._scripts.get(name)
        if sha is None:
            sha = self._scripts[name] = self._redis.script_load(source)
        return sha

    def _send(self, scripts: list[_Script]) -> list[Any]:
        """Each script's answer (an exception object for one that failed), in one round
        trip; the last one's failure is raised."""
        if len(scripts) == 1:
            name, source, keys, args = scripts[0]
            try:
                return [self._redis.evalsha(self._sha(name, source), len(keys), *keys, *args)]
            except self._no_script:
                # A restarted Redis forgot its scripts: load them again.
                self._scripts.pop(name, None)
                return [self._redis.evalsha(self._sha(name, source), len(keys), *keys, *args)]
        pipe = self._redis.pipeline(transaction=False)
        for name, source, keys, args in scripts:
            pipe.evalsha(self._sha(name, source), len(keys), *keys, *args)
        results: list[Any] = pipe.execute(raise_on_error=False)
        for index, result in enumerate(results):
            if isinstance(result, self._no_script):
                # A restarted Redis forgot its scripts: load them again, run those again.
                name, source, keys, args = scripts[index]
                self._scripts.pop(name, None)
                try:
                    sha = self._sha(name, source)
                    results[index] = self._redis.evalsha(sha, len(keys), *keys, *args)
                except self._errors as error:
                    results[index] = error
        if isinstance(results[-1], BaseException):
            raise results[-1]
        return results

    def command(self, *args: object) -> Any:
        """One plain command (reads); raises :class:`RedisDown`."""
        if not self.available:
            raise RedisDown(self.last_error or "Redis is unreachable")
        try:
            result = self._redis.execute_command(*args)
        except self._errors as error:
            self._failed(error)
            raise RedisDown(self.last_error) from None
        self._recovered()
        return result

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}".strip()
            self._down_until = time.monotonic() + self.retry_s
            first, self._down = not self._down, True
        if first:
            logger.warning(
                "Redis at %s is unreachable (%s): breakers and rate limits fall back to this "
                "process's own state, and calls with a budget are refused unless the budget "
                "fails open, until it answers again (retried every %.1f s)",
                self.url, self.last_error, self.retry_s,
            )  # fmt: skip

    def _recovered(self) -> None:
        if self._down:
            with self._lock:
                was, self._down = self._down, False
            if was:
                logger.warning("Redis at %s answers again: fleet state is shared again", self.url)

    def close(self) -> None:
        """Send the queued writes, then close the connection pool."""
        with suppress(*self._errors):
            later = self._drain()
            if later and self.available:
                self._send(later)
            self._redis.close()
