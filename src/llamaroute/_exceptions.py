"""The llamaroute error tree.

Every error llamaroute raises is a :class:`LlamarouteError`. Errors about the caller's input
(:class:`InvalidRequestError` and below) are raised before any network call; errors from a
provider are :class:`ProviderError` subclasses that carry the provider's status and code, with
the original exception chained as ``__cause__``; a routed call that tried several routes and
failed on all of them raises :class:`AllProvidersFailedError`, an ``ExceptionGroup`` of every
attempt's error.

::

    LlamarouteError
      ConfigurationError        missing credentials, unknown provider, bad client arguments
      InvalidRequestError       the request itself is wrong (out-of-range parameter, bad role)
        UnknownModelError       key not in the catalog, with close-match suggestions
        UnsupportedFeatureError e.g. an image to a text model, a region with no route
        InvalidImageError       not an image, unsupported format, too large even after downscaling
      BudgetExceededError       worst-case cost of the call exceeds the budget / max_cost
      ProviderError             .provider .model_id .status_code .code .retryable .retry_after
        ProviderConnectionError, ProviderTimeoutError, AuthenticationError, PaymentRequiredError,
        RateLimitError(.retry_after), BadRequestError, ModelNotAvailableError, ServerError,
        MalformedResponseError, StreamInterruptedError(.partial_text)
        EndpointConfigurationError  (also a ConfigurationError) the URL answered, but not as
                                the provider's API: a wrong base_url or host (an HTML 404,
                                another API's error); names the URL, not retried, falls back
        ContextWindowExceededError  (also an InvalidRequestError) the prompt plus max_tokens
                                does not fit a route's context window: raised before sending
                                when no route fits, or mapped from a provider's context error
                                (not retried there, but the call falls back to a larger window)
      StructuredOutputError     the answer failed response_format's schema, after the repair
                                attempt: .raw_text .validation_errors .attempts
      ToolExecutionError        client.run(raise_tool_errors=True): a tool function raised
      ToolLoopError             client.run: still asking for tools after max_rounds
      AllProvidersFailedError   ExceptionGroup of every attempt's error, plus .attempts
        DeadlineExceededError   the call's timeout= ran out first
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from ._records import Attempt

__all__ = [
    "AllProvidersFailedError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigurationError",
    "ContextWindowExceededError",
    "DeadlineExceededError",
    "EndpointConfigurationError",
    "InvalidImageError",
    "InvalidRequestError",
    "InvalidToolError",
    "LlamarouteError",
    "MalformedResponseError",
    "ModelNotAvailableError",
    "PaymentRequiredError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnsupportedFeatureError",
    "RateLimitError",
    "ServerError",
    "StreamInterruptedError",
    "StructuredOutputError",
    "ToolCallError",
    "ToolExecutionError",
    "ToolLoopError",
    "UnknownModelError",
    "UnsupportedFeatureError",
]


class LlamarouteError(Exception):
    """Base class of every error llamaroute raises."""


class ConfigurationError(LlamarouteError):
    """The client or a provider is set up wrongly: missing credentials, a missing optional
    dependency, an unknown provider name, a broken catalog file, bad client arguments."""


class InvalidRequestError(LlamarouteError, ValueError):
    """The request is wrong and no provider would accept it; raised before any network call."""


class UnknownModelError(InvalidRequestError):
    """The model name is neither a catalog key, an alias, nor a pinned ``provider:model_id``.

    ``suggestions`` lists close matches (catalog keys or pinned forms).
    """

    def __init__(self, message: str, *, name: str = "", suggestions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.suggestions: tuple[str, ...] = tuple(suggestions)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class UnsupportedFeatureError(InvalidRequestError):
    """The model or route cannot do what was asked (an image to a text-only model, a model in a
    region where the provider does not serve it, tools where the route has none)."""


class InvalidToolError(InvalidRequestError):
    """A tool definition or ``tool_choice`` is wrong (no name, a schema that is not an object,
    two tools with one name, an unknown form); raised before any request."""


class ToolCallError(LlamarouteError):
    """Why a tool call the model made cannot be used as it is. Never raised by a call: it is
    carried on :attr:`ToolCall.error <llamaroute.ToolCall.error>`, next to the raw text.

    ``kind`` is ``invalid_json``, ``not_an_object``, ``too_large``, ``schema_mismatch`` or
    ``unknown_tool``; ``name`` the tool's name; ``raw_arguments`` the text as the model wrote
    it (cut to 1,000 characters when too large).
    """

    def __init__(
        self, message: str, *, kind: str = "", name: str = "", raw_arguments: str = ""
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.raw_arguments = raw_arguments

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class InvalidImageError(InvalidRequestError):
    """The image cannot be used: unreadable, not an image, an unsupported format, corrupt, or too
    large even after downscaling. The message says which."""


class BudgetExceededError(LlamarouteError):
    """The worst-case cost of the call does not fit the remaining budget or ``max_cost``.

    Raised before anything is sent when no route fits, and also when a route's reservation is
    refused mid-call (other calls took the budget meanwhile): then ``attempts`` lists what the
    call had already sent. A refused reservation is always this error, never a provider's.
    """

    def __init__(self, message: str, *, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts: tuple[Attempt, ...] = tuple(attempts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class ProviderError(LlamarouteError):
    """A provider refused or failed the call.

    Attributes:
        provider: the provider name (``"openrouter"``, ``"bedrock"``, ``"ollama"``).
        model_id: the provider's native model ID that was called.
        status_code: the HTTP status, when there was one.
        code: the provider's own error code or type (e.g. ``"ThrottlingException"``,
            ``"context_length_exceeded"``), when there was one.
        retryable: whether the same request may succeed if sent again.
        retry_after: the server's wait hint in seconds (``Retry-After`` and friends), on any
            error that carried one (a 429, but also a 503).
        attempts: when this error ended a call (a request no other route would take), every
            attempt of that call, this one last; empty while it is one attempt's error.
    """

    #: Default for :attr:`retryable` when the mapping does not say otherwise.
    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model_id: str = "",
        status_code: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model_id = model_id
        self.status_code = status_code
        self.code = code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.attempts: tuple[Attempt, ...] = ()

    def __str__(self) -> str:
        where = self.provider + (f" {self.model_id}" if self.model_id else "")
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        prefix = f"[{where}]{status} " if where else (f"{status.strip()} " if status else "")
        return prefix + self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as ``cls(*args)`` by default, which would drop the keyword-only
        # attributes; rebuild from the instance dict instead.
        return (_rebuild, (type(self), self.args, self.__dict__))


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (refused, reset, DNS, TLS)."""

    default_retryable = True


class EndpointConfigurationError(ProviderConnectionError, ConfigurationError):
    """The configured URL answered, but not as the provider's API does (an HTML 404 page,
    another API's error, an answer of another API's shape): ``base_url`` or ``host`` is wrong.
    The message names the URL. Not retried (sending again cannot fix a setting), but still a
    :class:`ProviderError`, so another route can serve the call."""

    default_retryable = False


class ProviderTimeoutError(ProviderError):
    """The provider did not answer in time."""

    default_retryable = True


class AuthenticationError(ProviderError):
    """The provider rejected the credentials, or the account has no access to the model."""


class PaymentRequiredError(ProviderError):
    """The provider account has no credit left (a billing problem, not an outage)."""


class RateLimitError(ProviderError):
    """The provider is rate limiting this account. ``retry_after`` is the server's hint in
    seconds, when it gave one.

    Also raised, with code ``"local_rate_limit"`` and no request sent, when every deployment
    a call may use is at its own ``rpm``/``tpm`` limit and no slot frees within the call's
    ``timeout``; ``retry_after`` then says when one does."""

    default_retryable = True


class BadRequestError(ProviderError):
    """The provider rejected the request itself; sending it elsewhere would fail the same way."""


class ContextWindowExceededError(BadRequestError, InvalidRequestError):
    """The prompt (with ``max_tokens`` for the answer) does not fit a route's context window.

    Raised before anything is sent when no route's window can take the request (the message
    names each route's window; ``provider`` is then empty), and mapped from a provider's own
    context-length error (OpenRouter's ``context_length_exceeded``, Bedrock's
    ``ValidationException`` "Input is too long for requested model", Ollama's "exceeds the
    context length"). Unlike other bad-request errors it is not the request's fault
    everywhere: the call is not retried on the same route but falls back to a route with a
    larger window, and it does not count against the route's circuit breaker."""


class ModelNotAvailableError(ProviderError):
    """The provider does not serve this model now (not pulled, no endpoints, retired)."""


class ProviderUnsupportedFeatureError(ProviderError, UnsupportedFeatureError):
    """The provider says the route cannot do what was asked (Ollama's 400 "does not support
    tools", Bedrock's ValidationException for tool use): not retried, but another route may
    serve the call, so it falls back."""


class ServerError(ProviderError):
    """The provider failed (5xx, overloaded, model error)."""

    default_retryable = True


class MalformedResponseError(ProviderError):
    """The provider's response could not be understood (invalid JSON, a corrupt frame, a
    stream that ended without its end marker). The parser's own error is ``__cause__``."""

    default_retryable = True


class StreamInterruptedError(ProviderError):
    """A stream failed after some text reached the caller. ``partial_text`` holds that text;
    llamaroute never splices another provider's answer onto it."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        attempts: Sequence[Attempt] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text
        self.attempts = tuple(attempts)


class StructuredOutputError(LlamarouteError):
    """The model's answer did not parse as JSON or failed the ``response_format`` schema, on the
    first attempt and on every repair attempt. ``raw_text`` is the last answer as received,
    ``validation_errors`` what was wrong with it (one line each), ``attempts`` every request the
    call sent, the repair attempts included (each billed, so in the ledger too)."""

    def __init__(
        self,
        message: str,
        *,
        raw_text: str = "",
        validation_errors: Sequence[str] = (),
        attempts: Sequence[Attempt] = (),
    ) -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.validation_errors: tuple[str, ...] = tuple(validation_errors)
        self.attempts: tuple[Attempt, ...] = tuple(attempts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class _ToolRoundsError(LlamarouteError):
    """An error that ends ``client.run``'s tool loop, carrying what the loop did so far:
    ``rounds`` (the ``ChatResponse`` of every round, all billed), ``attempts`` (every request
    they sent) and ``messages`` (the conversation)."""

    def __init__(
        self, message: str, *, rounds: Sequence[Any] = (), messages: Sequence[Any] = ()
    ) -> None:
        super().__init__(message)
        self.rounds: tuple[Any, ...] = tuple(rounds)
        self.messages: tuple[Any, ...] = tuple(messages)

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every request the loop sent, round after round."""
        return tuple(attempt for response in self.rounds for attempt in response.attempts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


class ToolExecutionError(_ToolRoundsError):
    """A tool function raised inside ``client.run(..., raise_tool_errors=True)`` (without that
    flag the error goes back to the model as the tool's result instead). The function's
    exception is ``__cause__``; ``tool_name`` and ``tool_call_id`` name the call; ``rounds``
    are the ``ChatResponse`` of every round so far (the one that asked for the call last),
    ``attempts`` every request they sent, ``messages`` the conversation up to the call."""

    def __init__(
        self,
        message: str,
        *,
        tool_name: str = "",
        tool_call_id: str = "",
        rounds: Sequence[Any] = (),
        messages: Sequence[Any] = (),
    ) -> None:
        super().__init__(message, rounds=rounds, messages=messages)
        self.tool_name = tool_name
        self.tool_call_id = tool_call_id


class ToolLoopError(_ToolRoundsError):
    """``client.run`` reached ``max_rounds`` and the model still asked for tools. ``rounds``
    are the ``ChatResponse`` of every round (all billed), ``attempts`` every request they sent,
    ``messages`` the whole conversation (the last round's tool calls answered), so the caller
    can carry on with ``messages=``."""


class AllProvidersFailedError(ExceptionGroup[Exception], LlamarouteError):
    """Every planned attempt failed. An ``ExceptionGroup`` of each attempt's error, in order;
    ``attempts`` describes each attempt (provider, model ID, error, status, timing)."""

    def __new__(
        cls, message: str, exceptions: Sequence[Exception], attempts: Sequence[Attempt] = ()
    ) -> Self:
        self = super().__new__(cls, message, list(exceptions))
        self.attempts = tuple(attempts)
        return self

    def __init__(
        self, message: str, exceptions: Sequence[Exception], attempts: Sequence[Attempt] = ()
    ) -> None:
        super().__init__(message, list(exceptions))
        self.attempts: tuple[Attempt, ...] = tuple(attempts)

    def __str__(self) -> str:
        # The message already names every attempt and its cause; ExceptionGroup's own suffix,
        # "(3 sub-exceptions)", is jargon in a line meant for people.
        return self.message

    def derive(self, excs: Sequence[Exception]) -> AllProvidersFailedError:  # type: ignore[override]
        # split()/subgroup() keep the attempts: they describe the whole call.
        return type(self)(self.message, excs, self.attempts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, list(self.exceptions), self.attempts))


class DeadlineExceededError(AllProvidersFailedError):
    """The call's ``timeout=`` ran out before any attempt succeeded. Like its base class, it
    groups every attempt's error and lists the attempts."""


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    BaseException.__init__(error, *args)
    error.__dict__.update(state)
    return error
