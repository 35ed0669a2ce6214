"""Requests-per-minute and tokens-per-minute limits of a deployment, checked before sending.

A deployment (one OpenRouter key, one Ollama host, one Bedrock region) may be given ``rpm=``
and ``tpm=``: the client then never sends it more than that in any 60 seconds, so that the
provider's own 429 is not what spreads the load. The count is a sliding window (a log of the
last minute's admissions), not a fixed minute that would let twice the limit through across a
minute's edge.

Tokens are counted when the request is admitted, at an estimate that leans high (the
prompt's ceiling, its UTF-8 bytes, which no tokenizer exceeds, plus its ``max_tokens``: what
the answer may use, as Bedrock's own quota counts), and the estimate is replaced by the real
usage when the answer comes back. Leaning high keeps a provider's 429 away; the correction
gives the room back as soon as the answer says how much was used.

The state sits behind :class:`RateLimits`: :class:`MemoryRateLimits` keeps it in this
process (the default); ``llamaroute.fleet.RedisRateLimits`` keeps it on Redis, shared by a
fleet (``Client(state="redis://...")``). No module state: each client owns its limiter.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, Protocol

__all__ = [
    "WINDOW",
    "Hold",
    "Limit",
    "MemoryRateLimits",
    "RateLimits",
    "Refusal",
    "oversized",
    "requests_reached",
    "tokens_reached",
]

#: The window the limits are counted over, in seconds.
WINDOW = 60.0


class Limit(NamedTuple):
    """A deployment's limits per :data:`WINDOW` (``None``: no limit of that kind)."""

    rpm: int | None
    tpm: int | None


class Refusal(NamedTuple):
    """Why a deployment cannot take a request now, and in how many seconds it could
    (``math.inf``: never, a request larger than the tokens-per-minute limit)."""

    wait: float
    reason: str


class Hold:
    """One admitted request's place in a window: when, and how many tokens it counts for.

    ``id`` names it in a shared store (Redis: its member in the window), so that settling
    or cancelling finds it from another object; in memory the object itself is its identity
    and ``id`` is empty.
    """

    __slots__ = ("at", "id", "tokens")

    def __init__(self, at: float, tokens: int, id: str = "") -> None:
        self.at = at
        self.tokens = tokens
        self.id = id

    def __repr__(self) -> str:
        return f"Hold(at={self.at!r}, tokens={self.tokens!r}, id={self.id!r})"


class RateLimits(Protocol):
    """Where the limits' counts live: this process (:class:`MemoryRateLimits`) or a fleet's
    Redis (``llamaroute.fleet.RedisRateLimits``)."""

    def acquire(self, deployment: str, limit: Limit, tokens: int) -> Hold | Refusal:
        """Count one request of about ``tokens`` tokens against ``deployment`` now and return
        its :class:`Hold`, or count nothing and return a :class:`Refusal`."""
        ...

    def settle(self, deployment: str, hold: Hold, tokens: int) -> None:
        """Replace an admitted request's estimate with the ``tokens`` it really used."""
        ...

    def cancel(self, deployment: str, hold: Hold) -> None:
        """Take back an admission whose request was never sent (the budget refused it)."""
        ...


class _Window:
    """One deployment's admissions in the last :data:`WINDOW` seconds, oldest first."""

    __slots__ = ("holds", "tokens")

    def __init__(self) -> None:
        self.holds: deque[Hold] = deque()
        self.tokens = 0  # the sum of the holds' tokens

    def expire(self, now: float) -> None:
        holds = self.holds
        while holds and holds[0].at <= now - WINDOW:
            self.tokens -= holds.popleft().tokens


class MemoryRateLimits:
    """:class:`RateLimits` in this process (thread-safe: one lock, never held while waiting).

    ``clock`` is a monotonic clock in seconds (injectable for tests; a client passes its
    retry policy's, the one its deadlines and breakers read).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def acquire(self, deployment: str, limit: Limit, tokens: int) -> Hold | Refusal:
        now = self._clock()
        with self._lock:
            window = self._windows.get(deployment)
            if window is None:
                window = self._windows[deployment] = _Window()
            window.expire(now)
            holds = window.holds
            if limit.tpm is not None and tokens > limit.tpm:
                return oversized(tokens, limit.tpm)
            if limit.rpm is not None and len(holds) >= limit.rpm:
                # Free when the request that makes the count one too many leaves the window.
                oldest = holds[len(holds) - limit.rpm]
                return requests_reached(limit.rpm, oldest.at + WINDOW - now)
            if limit.tpm is not None and window.tokens + tokens > limit.tpm:
                wait = _tokens_free_in(window, tokens, limit.tpm, now)
                return tokens_reached(limit.tpm, wait)
            hold = Hold(now, tokens)
            holds.append(hold)
            window.tokens += tokens
            return hold

    def settle(self, deployment: str, hold: Hold, tokens: int) -> None:
        with self._lock:
            window = self._windows.get(deployment)
            # A hold that has left the window no longer counts: nothing to correct.
            if window is not None and window.holds and hold.at >= window.holds[0].at:
                window.tokens += tokens - hold.tokens
            hold.tokens = tokens

    def cancel(self, deployment: str, hold: Hold) -> None:
        with self._lock:
            window = self._windows.get(deployment)
            if window is not None and hold in window.holds:
                window.holds.remove(hold)
                window.tokens -= hold.tokens

    def usage(self, deployment: str) -> tuple[int, int]:
        """The requests and tokens counted against ``deployment`` in the current window."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(deployment)
            if window is None:
                return 0, 0
            window.expire(now)
            return len(window.holds), window.tokens


def requests_reached(rpm: int, wait: float) -> Refusal:
    """The refusal of a deployment at its requests-per-minute limit (free in ``wait`` s)."""
    return Refusal(wait, f"rate limit: {rpm} requests/min reached")


def tokens_reached(tpm: int, wait: float) -> Refusal:
    """The refusal of a deployment at its tokens-per-minute limit (free in ``wait`` s)."""
    return Refusal(wait, f"rate limit: {tpm} tokens/min reached")


def oversized(tokens: int, tpm: int) -> Refusal:
    """The refusal of a request larger than the whole tokens-per-minute limit: never fits."""
    return Refusal(math.inf, f"rate limit: this request's ~{tokens} tokens exceed {tpm} tokens/min")


def _tokens_free_in(window: _Window, tokens: int, tpm: int, now: float) -> float:
    """Seconds until enough of the window's tokens have left it for ``tokens`` more."""
    over = window.tokens + tokens - tpm
    for hold in window.holds:
        over -= hold.tokens
        if over <= 0:
            return hold.at + WINDOW - now
    return WINDOW  # not reached: every hold leaves within the window
