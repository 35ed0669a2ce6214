"""The chaos harness shared by ``test_chaos.py`` (our fakes) and ``test_thirdparty_chaos.py``
(llmock and aimock): run many calls through one client, sync from several threads or async
as many tasks, half of them streamed, then judge every outcome and hold each call's
``attempts`` against the requests the servers say they received.

Each call's prompt carries its number (``chaos question 17``), so every request a server
records can be traced back to the call that sent it: that is how a hidden retry (a request
no attempt accounts for) or a phantom attempt (an attempt no server saw) is caught per call,
not only in the totals.

What counts (TESTPLAN R1):

* success: a ``ChatResponse`` whose text is exactly the full answer of the provider that gave
  it (for a stream, the chunks the caller received add up to that same text), and whose
  attempts end with that one success;
* typed failure: ``AllProvidersFailedError`` / ``DeadlineExceededError`` with one attempt per
  error, every one an error, and no text delivered; or ``StreamInterruptedError`` after
  partial text that is exactly what the caller received and a prefix of that provider's
  answer;
* wrong: a success with another text (truncated, spliced, another provider's), or a partial
  text that is not what was delivered;
* untyped: any exception outside ``LlamarouteError``;
* lost: anything else: a call that never ended, or a typed error that does not account for
  its attempts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote

from llamaroute import (
    AllProvidersFailedError,
    AsyncClient,
    Attempt,
    ChatResponse,
    Client,
    DeadlineExceededError,
    LlamarouteError,
    ProviderError,
    StreamInterruptedError,
)
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter

PROVIDERS = ("openrouter", "bedrock", "ollama")
_CALL_NUMBER = re.compile(rb"chaos question (\d+)")

SUCCESS, TYPED, WRONG, UNTYPED, LOST = "success", "typed failure", "wrong", "untyped", "lost"


@dataclass(frozen=True)
class ChaosCall:
    """One planned call: streamed or not, which model, which providers in which order."""

    number: int
    streaming: bool
    model: str
    providers: tuple[str, ...]
    tag: str = ""  # words after the number, for servers that pick an answer by the prompt

    @property
    def prompt(self) -> str:
        return f"chaos question {self.number}{self.tag}"


def plan_calls(
    first: int,
    count: int,
    providers: Sequence[str] = PROVIDERS,
    models: Sequence[str] = ("llama-3.2-3b", "llama-3.2-1b"),
    tag: Callable[[int], str] = lambda number: "",
) -> list[ChaosCall]:
    """``count`` calls numbered from ``first``: every other one streamed, the provider order
    cycling through every permutation (so every provider is first, second and last)."""
    orders = list(itertools.permutations(providers))
    calls = []
    for n in range(first, first + count):
        model, order = models[(n // 2) % len(models)], orders[(n // 2) % len(orders)]
        calls.append(ChaosCall(n, n % 2 == 1, model, order, tag(n)))
    return calls


@dataclass
class Outcome:
    """What one call ended with, and the text its caller received along the way."""

    call: ChaosCall
    mode: str
    response: ChatResponse | None = None
    error: BaseException | None = None
    chunks: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def attempts(self) -> tuple[Attempt, ...] | None:
        if self.response is not None:
            return self.response.attempts
        if isinstance(self.error, StreamInterruptedError | AllProvidersFailedError):
            return self.error.attempts
        return None


# --- running ------------------------------------------------------------------------------------


def run_sync(
    client: Client, calls: Sequence[ChaosCall], *, threads: int, timeout: float, limit: float
) -> list[Outcome]:
    """Every call from ``threads`` threads; calls not ended after ``limit`` seconds are
    missing from the result (lost)."""

    def one(call: ChaosCall) -> Outcome:
        outcome = Outcome(call, "sync")
        started = time.perf_counter()
        try:
            if call.streaming:
                with client.stream(call.model, call.prompt, providers=call.providers,
                                   timeout=timeout) as stream:  # fmt: skip
                    for chunk in stream:
                        outcome.chunks.append(chunk.text)
                outcome.response = stream.response
            else:
                outcome.response = client.chat(
                    call.model, call.prompt, providers=call.providers, timeout=timeout
                )
        except BaseException as error:  # judged below: typed or not
            outcome.error = error
        outcome.elapsed = time.perf_counter() - started
        return outcome

    pool = ThreadPoolExecutor(threads, thread_name_prefix="chaos")
    futures = [pool.submit(one, call) for call in calls]
    done, _ = wait(futures, timeout=limit)
    pool.shutdown(wait=False, cancel_futures=True)
    return [future.result() for future in futures if future in done]


async def run_async(
    client: AsyncClient,
    calls: Sequence[ChaosCall],
    *,
    concurrency: int,
    timeout: float,
    limit: float,
) -> list[Outcome]:
    """Every call as its own task, ``concurrency`` at a time; as :func:`run_sync`."""
    gate = asyncio.Semaphore(concurrency)

    async def one(call: ChaosCall) -> Outcome:
        outcome = Outcome(call, "async")
        async with gate:
            started = time.perf_counter()
            try:
                if call.streaming:
                    async with client.stream(call.model, call.prompt, providers=call.providers,
                                             timeout=timeout) as stream:  # fmt: skip
                        async for chunk in stream:
                            outcome.chunks.append(chunk.text)
                    outcome.response = stream.response
                else:
                    outcome.response = await client.chat(
                        call.model, call.prompt, providers=call.providers, timeout=timeout
                    )
            except Exception as error:  # judged below; cancellation (lost) propagates
                outcome.error = error
            outcome.elapsed = time.perf_counter() - started
        return outcome

    tasks = [asyncio.create_task(one(call)) for call in calls]
    done, pending = await asyncio.wait(tasks, timeout=limit)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return [task.result() for task in tasks if task in done]


# --- judging ------------------------------------------------------------------------------------

#: ``expected(provider, call)``: the complete answer that provider gives to that call.
Expected = Callable[[str, ChaosCall], str]


def judge(outcome: Outcome, expected: Expected) -> tuple[str, str | None]:
    """The outcome's category, and why when it is not a success or a typed failure."""
    response, error, call = outcome.response, outcome.error, outcome.call
    delivered = "".join(outcome.chunks)
    if response is not None:
        if response.text != expected(response.provider, call):
            return WRONG, f"{response.provider} answered {response.text!r}"
        if call.streaming and delivered != response.text:
            return WRONG, f"the caller received {delivered!r}, the response says {response.text!r}"
        attempts = response.attempts
        if (
            not attempts
            or (attempts[-1].outcome, attempts[-1].provider) != ("ok", response.provider)
            or any(attempt.outcome != "error" for attempt in attempts[:-1])
        ):
            return LOST, f"attempts do not end in this one success: {attempts}"
        return SUCCESS, None
    if error is None:
        return LOST, "neither an answer nor an error"
    if not isinstance(error, LlamarouteError):
        return UNTYPED, repr(error)
    if isinstance(error, StreamInterruptedError):
        partial = error.partial_text
        if not call.streaming or not partial or partial != delivered:
            return WRONG, f"partial text {partial!r}, the caller received {delivered!r}"
        if not expected(error.provider, call).startswith(partial):
            return WRONG, f"{partial!r} is not the start of {error.provider}'s answer"
        attempts = error.attempts
        if not attempts or not attempts[-1].partial or attempts[-1].provider != error.provider:
            return LOST, f"the interrupted attempt is not last: {attempts}"
        if any(attempt.outcome != "error" for attempt in attempts):
            return LOST, f"a success among the attempts of a failure: {attempts}"
        return TYPED, None
    if isinstance(error, AllProvidersFailedError):
        if delivered:
            return WRONG, f"{delivered!r} was delivered before {type(error).__name__}"
        attempts, errors = error.attempts, error.exceptions
        if not attempts and isinstance(error, DeadlineExceededError):
            return TYPED, None  # the deadline passed before the first attempt could start
        if len(attempts) != len(errors):
            return LOST, f"{len(attempts)} attempts for {len(errors)} errors"
        for attempt, cause in zip(attempts, errors, strict=True):
            if not isinstance(cause, ProviderError) or attempt.outcome != "error":
                return LOST, f"{cause!r} in the group"
            if (attempt.error_type, attempt.provider) != (type(cause).__name__, cause.provider):
                return LOST, f"attempt {attempt} does not describe {cause!r}"
        return TYPED, None
    return LOST, f"{type(error).__name__} that does not list the attempts: {error}"


# --- what the servers received ------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One chat request as a server recorded it."""

    at: float
    provider: str
    model_id: str
    body: bytes


def received_by_fakes(
    openrouter: FakeOpenRouter | None, bedrock: FakeBedrock | None, ollama: FakeOllama | None
) -> list[Received]:
    """Every chat request our fakes recorded (not Ollama's ``/api/tags``, for example)."""
    found = []
    for request in openrouter.requests if openrouter else ():
        if not request.path.endswith("/chat/completions"):
            continue
        found.append(Received(request.received_at, "openrouter", _model(request.json),
                              request.body))  # fmt: skip
    for request in bedrock.requests if bedrock else ():
        model_id = unquote(request.path.split("?", 1)[0].split("/")[2])
        found.append(Received(request.received_at, "bedrock", model_id, request.body))
    for request in ollama.requests if ollama else ():
        if request.path.split("?", 1)[0] == "/api/chat":
            found.append(Received(request.received_at, "ollama", _model(request.json),
                                  request.body))  # fmt: skip
    return found


def _model(body: object) -> str:
    return str(body.get("model")) if isinstance(body, dict) else "(not JSON)"


def by_call(received: Iterable[Received]) -> dict[int | None, list[Received]]:
    """The received requests of each call number, in the order they arrived (``None``: a
    request that names no call)."""
    calls: dict[int | None, list[Received]] = {}
    for request in sorted(received, key=lambda r: r.at):
        match = _CALL_NUMBER.search(request.body)
        calls.setdefault(int(match.group(1)) if match else None, []).append(request)
    return calls


def reconcile(
    attempts: Sequence[Attempt], seen: Sequence[Received], *, ordered: bool = True
) -> str | None:
    """Whether one call's attempts are exactly the requests the servers received for it.

    Every request received must be one of the call's attempts (else: a retry below ours),
    and every attempt must have arrived, in order (``ordered=False``: servers whose clocks
    cannot be compared; counts only). The one exception is an attempt that timed out: its
    request may not have reached the server (still queued for a connection or a worker
    thread when the call's time ran out, or cut off mid-body), or, for Bedrock's async calls
    whose boto3 worker thread cannot be interrupted, it may arrive late.
    """
    sent = [(attempt.provider, attempt.model_id) for attempt in attempts]
    received = [(request.provider, request.model_id) for request in seen]
    extra = Counter(received) - Counter(sent)
    if extra:
        return f"requests no attempt accounts for: {dict(extra)}; attempts {sent}"
    timed_out = [attempt.error_type == "ProviderTimeoutError" for attempt in attempts]
    needed = [key for key, late in zip(sent, timed_out, strict=True) if not late]
    if ordered:
        arrivals = iter(received)
        arrived = all(key in arrivals for key in needed)
    else:
        arrived = not Counter(needed) - Counter(received)
    if not arrived:
        return f"attempts {sent}, but the servers received {received}"
    return None


def unaccounted(
    outcomes: Iterable[Outcome], received: Iterable[Received], *, ordered: bool = True
) -> tuple[list[str], int, int]:
    """Calls whose attempts differ from what the servers received for them (see
    :func:`reconcile`); how many attempts (timed out) never reached a server whole; how many
    requests arrived cut off (naming no call)."""
    requests = by_call(received)
    problems, unseen = [], 0
    for outcome in outcomes:
        attempts = outcome.attempts
        if attempts is None:
            continue
        seen = requests.get(outcome.call.number, [])
        unseen += len(attempts) - len(seen)
        why = reconcile(attempts, seen, ordered=ordered)
        if why is not None:
            problems.append(f"call {outcome.call.number} ({outcome.mode}): {why}")
    # A request cut off mid-body names no call: it must be one of the unseen attempts.
    nameless = len(requests.get(None, []))
    if nameless > unseen:
        problems.append(f"{nameless} requests that name no call, only {unseen} attempts unseen")
    return problems, unseen, nameless


# --- figures ------------------------------------------------------------------------------------


@dataclass
class Figures:
    """The run's figures, and every problem found, for the assertions and the printout."""

    planned: int
    outcomes: list[Outcome]
    received: int
    faults: dict[str, int]
    elapsed: float
    categories: Counter[str] = field(default_factory=Counter)
    typed: Counter[str] = field(default_factory=Counter)
    failed_attempts: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    unseen: int = 0  # attempts that timed out before the server had the whole request
    nameless: int = 0  # requests that arrived cut off, without the call's number
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.planned - len(self.outcomes) + self.categories[LOST]

    @property
    def failure_rate(self) -> float:
        return sum(self.failed_attempts.values()) / max(1, self.attempts)

    def report(self, title: str) -> str:
        modes = Counter(
            f"{o.mode} {'stream' if o.call.streaming else 'chat'}" for o in self.outcomes
        )
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(modes.items()))
        lines = [
            f"{title}: {self.planned} calls ({kinds}) in {self.elapsed:.1f} s",
            f"  attempts {self.attempts}, failed {sum(self.failed_attempts.values())}"
            f" = {self.failure_rate:.1%}; requests received by the servers {self.received}"
            f" ({self.unseen} attempts timed out before their request arrived whole)",
            f"  faults injected: {dict(self.faults)}",
            f"  failed attempts by error: {dict(self.failed_attempts.most_common())}",
            f"  successes {self.categories[SUCCESS]}, typed failures {self.categories[TYPED]}"
            f" {dict(self.typed.most_common())}",
            f"  lost {self.lost}, untyped {self.categories[UNTYPED]},"
            f" wrong or spliced {self.categories[WRONG]}",
        ]
        lines += [f"  ! {problem}" for problem in self.problems[:20]]
        return "\n".join(lines)


def tally(
    planned: Sequence[ChaosCall],
    outcomes: list[Outcome],
    expected: Expected,
    received: list[Received],
    faults: dict[str, int],
    elapsed: float,
    *,
    ordered: bool = True,
) -> Figures:
    """Judge every outcome and match the attempts against what the servers received (in
    order, unless ``ordered=False``: see :func:`reconcile`)."""
    figures = Figures(len(planned), outcomes, len(received), faults, elapsed)
    ended = {outcome.call.number for outcome in outcomes}
    figures.problems += [f"call {c.number} never ended" for c in planned if c.number not in ended]
    for outcome in outcomes:
        category, why = judge(outcome, expected)
        figures.categories[category] += 1
        if category == TYPED:
            figures.typed[type(outcome.error).__name__] += 1
        if why is not None:
            figures.problems.append(
                f"call {outcome.call.number} ({outcome.mode}) {category}: {why}"
            )
        for attempt in outcome.attempts or ():
            figures.attempts += 1
            if attempt.outcome == "error":
                figures.failed_attempts[attempt.error_type or "?"] += 1
    problems, figures.unseen, figures.nameless = unaccounted(outcomes, received, ordered=ordered)
    figures.problems += problems
    return figures


# --- secrets in logs (TESTPLAN K2) ----------------------------------------------------------


class CanaryWatch(logging.Handler):
    """Reads every log record (formatted, with its arguments and traceback) for the canaries;
    keeps only the offenders, so that a long run at DEBUG costs no memory."""

    def __init__(self, canaries: dict[str, str]) -> None:
        super().__init__(logging.DEBUG)
        self.canaries = canaries
        self.records = 0
        self.found: list[tuple[str, str]] = []  # (logger, canary name)

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        self.records += 1
        for name, canary in self.canaries.items():
            if canary in text:
                self.found.append((record.name, name))


#: Every logger TESTPLAN K2 names, and ours.
DEBUG_LOGGERS = ("llamaroute", "httpx", "httpcore", "urllib3", "botocore", "boto3", "tenacity",
                 "ollama", "asyncio")  # fmt: skip


@contextmanager
def watching_logs(canaries: dict[str, str]) -> Iterator[CanaryWatch]:
    """Every logger TESTPLAN K2 names at DEBUG, read by a :class:`CanaryWatch`, for the
    duration of the block. Their records stop there (pytest's own capture would keep them
    all in memory)."""
    watch = CanaryWatch(canaries)
    loggers = [logging.getLogger(name) for name in DEBUG_LOGGERS]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(watch)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    try:
        yield watch
    finally:
        for logger, (level, propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(watch)
            logger.setLevel(level)
            logger.propagate = propagate
