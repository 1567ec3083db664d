"""Errors raised by the core and presented at the edges.

Every message is written for the user: what failed and what to do next. The CLI prints
``Error: <message>`` and exits with ``exit_code``; the server answers ``http_status`` with a JSON
body in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, whose ``code`` is
``error_type`` and ``param`` the request field at fault, where one is.
"""

from __future__ import annotations


class QuotegenError(Exception):
    """Base class of every error meant for users."""

    exit_code: int = 1
    http_status: int = 500
    error_type: str = "quotegen_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidModelReferenceError(QuotegenError):
    """A model name that is neither a Hub repo id nor a local model directory."""

    exit_code = 2
    http_status = 400
    error_type = "invalid_model"


class ModelNotFoundError(QuotegenError):
    """The Hub has no such repository or revision (or it is private)."""

    http_status = 404
    error_type = "model_not_found"


class ModelAccessError(QuotegenError):
    """The repository exists but needs a token or accepted terms (401/403)."""

    http_status = 403
    error_type = "model_access_denied"


class ModelNotCachedError(QuotegenError):
    """The model is not in the local cache and the Hub cannot be reached."""

    http_status = 503
    error_type = "model_not_cached"


class NoModelAvailableError(QuotegenError):
    """No ``--model`` given and no default model is available offline."""

    error_type = "no_model"


class HubUnreachableError(QuotegenError):
    """A network failure talking to the Hub."""

    http_status = 502
    error_type = "hub_unreachable"


class InvalidModelError(QuotegenError):
    """A directory that is not a loadable model: missing, incomplete or corrupted files."""

    error_type = "invalid_model_files"


class UnsafeWeightsError(QuotegenError):
    """Only pickle (``.bin``) weights are available and the user did not opt in."""

    error_type = "unsafe_weights"


class DeviceError(QuotegenError):
    """The requested device or dtype is not available here."""

    exit_code = 2
    error_type = "invalid_device"


class PromptTooLongError(QuotegenError):
    """The prompt (plus the tokens asked for) does not fit the model's context."""

    http_status = 422
    error_type = "prompt_too_long"


class InputError(QuotegenError):
    """Unreadable input, such as invalid UTF-8 on stdin."""

    http_status = 400
    error_type = "invalid_input"


class DownloadError(QuotegenError):
    """A download that failed part-way (disk full, interrupted transfer)."""

    error_type = "download_failed"


class OverloadedError(QuotegenError):
    """The server's queue is full; the client should retry later."""

    http_status = 503
    error_type = "overloaded"


class RequestTimeoutError(QuotegenError):
    """A request that waited or ran longer than the server allows."""

    http_status = 504
    error_type = "timeout"


class NotReadyError(QuotegenError):
    """The server's model is still loading (or failed to load)."""

    http_status = 503
    error_type = "not_ready"


class UnauthorizedError(QuotegenError):
    """A missing or wrong API key."""

    http_status = 401
    error_type = "unauthorized"


class InvalidRequestError(QuotegenError):
    """A request that passed schema validation but breaks a server limit."""

    http_status = 422
    error_type = "invalid_request"


class UnknownModelError(QuotegenError):
    """A client named a model this server does not serve."""

    http_status = 404
    error_type = "model_not_found"


class BatchConflictError(QuotegenError):
    """An existing output was made by a different job."""

    exit_code = 1
    error_type = "batch_conflict"


class ServerError(QuotegenError):
    """The server answered with an error (its message is passed on)."""

    error_type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.status = status
        self.code = code


class ServerUnreachableError(QuotegenError):
    """Client mode: the quotegen server cannot be reached."""

    error_type = "server_unreachable"


class RayUnavailableError(QuotegenError):
    """``--ray`` without Ray installed, or a Ray cluster that cannot be joined."""

    error_type = "ray_unavailable"


def as_user_error(error: BaseException) -> QuotegenError:
    """A failure inside generation, as the error users see (the model's own kept as is)."""
    if isinstance(error, QuotegenError):
        return error
    return QuotegenError(f"Generation failed: {type(error).__name__}: {error}")


def brief(exc: BaseException) -> str:
    """An exception's message on one line, at most 160 characters (for an error's "(...)")."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
