"""What can go wrong when calling a model server, as exceptions callers can act on.

``lasting`` marks problems that will not fix themselves (a wrong model name, a
request the server rejects): they deserve a message the user sees. Transient ones
(a timeout, a dropped stream) are logged; :func:`is_outage` says which failures
count towards the circuit breaker.
"""

from __future__ import annotations


class ModelError(RuntimeError):
    """The model server could not produce an answer; `lasting` problems deserve a user message."""

    lasting: bool = False


class ModelUnavailable(ModelError):
    """Cannot connect: the server is down, still starting, or the URL is wrong."""


class ModelPaused(ModelUnavailable):
    """Not sent: the circuit breaker is open after repeated failures (already reported)."""

    def __init__(self, message: str, retry_in_s: float) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


class ModelTimeout(ModelError):
    """Connected, but the server stayed silent past the read timeout."""


class ModelConnectionLost(ModelError):
    """The connection broke after the request went out (a crash, a restart, a proxy)."""


class ModelHTTPError(ModelError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"model server answered HTTP {status}: {message}")
        self.status = status
        self.detail = message
        # 4xx other than 429 means our request or configuration is wrong; it will not fix itself.
        self.lasting = 400 <= status < 500 and status != 429


class ModelRateLimited(ModelHTTPError):
    """HTTP 429, or a call not sent because the last 429's Retry-After has not passed."""

    def __init__(self, message: str, retry_in_s: float) -> None:
        super().__init__(429, message)
        self.retry_in_s = retry_in_s


class ModelNotFound(ModelHTTPError):
    """HTTP 404 for the model name: the server serves other models (or restarted as one)."""

    def __init__(self, message: str, model: str | None) -> None:
        super().__init__(404, message)
        self.model = model


class ContextTooLong(ModelHTTPError):
    """HTTP 400: the prompt plus max_tokens exceed the served model's context window."""

    def __init__(self, message: str, limit: int | None, requested: int | None) -> None:
        super().__init__(400, message)
        self.limit = limit  # the server's max_model_len
        self.requested = requested  # prompt + max_tokens, when the server said
        self.lasting = False  # the backend shrinks the next prompts


class ModelProtocolError(ModelError):
    """The server sent something that is not the OpenAI streaming format."""


def is_outage(exc: ModelError) -> bool:
    """Failures that say the server is down or sick (they count for the breaker)."""
    if isinstance(exc, ModelPaused):
        return False
    if isinstance(exc, ModelHTTPError):
        return exc.status >= 500
    return isinstance(exc, ModelUnavailable | ModelTimeout | ModelConnectionLost)
