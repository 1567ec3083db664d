"""Errors raised by the core and presented at the edges.

Every message is written for the user: what failed and what to do next. The CLI prints
``Error: <message>`` and exits with ``exit_code``; the server answers ``http_status`` with a JSON
body in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, whose ``code`` is
``error_type`` and ``param`` the request field at fault, where one is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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


# -- the Hugging Face Hub's failures, in words ---------------------------------------------------

_DISK_FULL = (
    "The disk is full while downloading '{name}' ({detail}). Free some space (or use "
    "--cache-dir elsewhere) and run the same command again; files already complete are kept."
)
_UNREACHABLE_UPLOAD = (
    "Could not reach the Hub to upload '{name}' ({kind}). Check your network and HF_ENDPOINT."
)
_REPO_FOR_UPLOAD = (
    "The repo '{name}' does not exist on the Hub, or your token cannot see it. Drop "
    "--no-create to create it, or check HF_TOKEN."
)
_READ_ACCESS = (
    "The Hub refused access to '{name}' (HTTP {status}). Set HF_TOKEN (or pass --token) to a "
    "token that can read it."
)

#: What each kind of Hub failure (``hub_failure``) becomes, for a download and an upload: the
#: error class and its message ({name}, {status}, {kind}: the exception's class, {detail}).
#: A kind an operation does not list is not the Hub's doing and propagates as it is.
HUB_ERRORS: dict[str, dict[str, tuple[type[QuotegenError], str]]] = {
    "download": {
        "gated": (
            ModelAccessError,
            "Model '{name}' is gated: accept its terms on the Hub, then set HF_TOKEN (or pass "
            "--token) to a token of that account.",
        ),
        "revision": (
            ModelNotFoundError,
            "Revision not found for model '{name}'. Check the branch, tag or commit after '@'.",
        ),
        "repo_denied": (
            ModelNotFoundError,
            "Model '{name}' was not found on the Hub. It may be private: set HF_TOKEN (or pass "
            "--token) to a token that can read it.",
        ),
        "repo": (
            ModelNotFoundError,
            "Model '{name}' was not found on the Hub. Check the spelling; if it is private, "
            "set HF_TOKEN.",
        ),
        "not_cached": (
            ModelNotCachedError,
            "Model '{name}' is not in the local cache and the Hub cannot be reached. Run: "
            "quotegen download {name}",
        ),
        "offline": (
            ModelNotCachedError,
            "Model '{name}' is not in the local cache and HF_HUB_OFFLINE=1 forbids downloads. "
            "Run: quotegen download {name} (with network access)",
        ),
        "http_401": (ModelAccessError, _READ_ACCESS),
        "http_403": (ModelAccessError, _READ_ACCESS),
        "http": (
            HubUnreachableError,
            "The Hub answered HTTP {status} for '{name}'. Try again later.",
        ),
        "disk_full": (DownloadError, _DISK_FULL),
        "interrupted": (
            DownloadError,
            "The download of '{name}' was interrupted ({kind}) after retrying. Run the same "
            "command again: files already complete are kept.",
        ),
        "network": (
            HubUnreachableError,
            "Could not reach the Hub for '{name}' ({kind}). Check your network; a cached model "
            "works offline with HF_HUB_OFFLINE=1.",
        ),
    },
    "upload": {
        "offline": (
            HubUnreachableError,
            "HF_HUB_OFFLINE=1 forbids uploading '{name}': unset it to publish.",
        ),
        "gated": (ModelNotFoundError, _REPO_FOR_UPLOAD),
        "repo": (ModelNotFoundError, _REPO_FOR_UPLOAD),
        "repo_denied": (ModelNotFoundError, _REPO_FOR_UPLOAD),
        "revision": (ModelNotFoundError, "The revision to upload to was not found in '{name}'."),
        "http_401": (
            ModelAccessError,
            "The Hub refused your token (HTTP 401). Set HF_TOKEN to a valid token with write "
            "access, or run `hf auth login`.",
        ),
        "http_403": (
            ModelAccessError,
            "Your token may not write to '{name}' (HTTP 403): use a token with write access to "
            "that namespace.",
        ),
        "http": (HubUnreachableError, "The Hub refused the upload: {detail}"),
        "invalid": (InvalidModelError, "Cannot upload to '{name}': {detail}"),
        "not_cached": (InvalidModelError, "Cannot upload to '{name}': {detail}"),
        "disk_full": (HubUnreachableError, _UNREACHABLE_UPLOAD),
        "interrupted": (HubUnreachableError, _UNREACHABLE_UPLOAD),
        "network": (HubUnreachableError, _UNREACHABLE_UPLOAD),
    },
}

# Transfer errors of the HTTP libraries huggingface_hub has used (requests, httpx, httpx2).
_INTERRUPTED = {
    "RemoteProtocolError",
    "ReadError",
    "ReadTimeout",
    "ChunkedEncodingError",
    "ProtocolError",
    "IncompleteRead",
}
_HTTP_LIBRARIES = {"httpx", "httpx2", "requests", "urllib3"}


def hub_failure(exc: BaseException) -> str | None:
    """What kind of Hub failure ``exc`` is (a key of ``HUB_ERRORS``'s tables), or None."""
    import errno

    from huggingface_hub import errors as hf

    status = getattr(getattr(exc, "response", None), "status_code", None)
    # Subclasses before their bases: a gated repo is a missing repo, a missing local entry
    # and offline mode are OSErrors, a missing revision is an HTTP error.
    if isinstance(exc, hf.GatedRepoError):
        return "gated"
    if isinstance(exc, hf.RevisionNotFoundError):
        return "revision"
    if isinstance(exc, hf.RepositoryNotFoundError):
        return "repo_denied" if status in (401, 403) else "repo"
    if isinstance(exc, hf.LocalEntryNotFoundError):
        return "not_cached"
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return "offline"
    if isinstance(exc, hf.HfHubHTTPError):
        return {401: "http_401", 403: "http_403"}.get(status or 0, "http")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "disk_full"
    # huggingface_hub has used requests, httpx and httpx2 over the years: match by name.
    kinds = {(c.__module__.split(".")[0], c.__name__) for c in type(exc).__mro__}
    library = any(module in _HTTP_LIBRARIES for module, _ in kinds)
    if library and {name for _, name in kinds} & _INTERRUPTED:
        return "interrupted"
    if library or isinstance(exc, OSError):
        return "network"
    if isinstance(exc, ValueError):  # huggingface_hub's own checks (e.g. a card's metadata)
        return "invalid"
    return None


@contextmanager
def hub_errors(name: str, operation: str = "download") -> Iterator[None]:
    """Translate huggingface_hub and network failures of ``operation`` (``download`` or
    ``upload``) on ``name`` into ``QuotegenError``s with a next step (``HUB_ERRORS``)."""
    try:
        yield
    except QuotegenError:
        raise
    except Exception as exc:
        found = HUB_ERRORS[operation].get(hub_failure(exc) or "")
        if found is None:
            raise
        kind, template = found
        status = getattr(getattr(exc, "response", None), "status_code", None)
        detail = getattr(exc, "strerror", None) or (str(exc).splitlines() or [""])[0]
        message = template.format(name=name, status=status, kind=type(exc).__name__, detail=detail)
        raise kind(message) from exc
