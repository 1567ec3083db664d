"""The Hugging Face Hub: downloads into the HF cache, Hub errors in words, the cache listed.

huggingface_hub is imported inside the functions (it reads its environment at import and costs
time); ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` are read when used, not at import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quotegen.config import hub_endpoint, hub_offline
from quotegen.errors import (
    DownloadError,
    HubUnreachableError,
    InvalidModelError,
    InvalidModelReferenceError,
    ModelAccessError,
    ModelNotCachedError,
    ModelNotFoundError,
    QuotegenError,
    UnsafeWeightsError,
)

if TYPE_CHECKING:
    from quotegen.loading.references import ModelRef

#: What loading a model needs from a repo; weights are added by ``_weight_patterns``.
LOAD_PATTERNS = [
    "config.json",
    "adapter_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "*.tiktoken",
    "chat_template.*",
    "README.md",
]
SAFETENSORS_PATTERNS = ["*.safetensors", "*.safetensors.index.json"]
PICKLE_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` read now (huggingface_hub reads it once, at import)."""
    return hub_offline()


def cached_snapshot(ref: ModelRef, cache_dir: Path | None = None) -> Path | None:
    """The local snapshot of a Hub ref if it holds config and weights, else None."""
    assert ref.repo_id is not None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(
            snapshot_download(
                ref.repo_id,
                revision=ref.revision,
                cache_dir=cache_dir,
                local_files_only=True,
            )
        )
    except LocalEntryNotFoundError:  # not cached; anything else is a real failure to report
        return None
    has_config = (path / "config.json").is_file() or (path / "adapter_config.json").is_file()
    if has_config and weight_files(path):
        return path
    return None


def weight_files(path: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    safetensors = sorted(path.glob("*.safetensors"))
    pickle = sorted(path.glob("pytorch_model*.bin"))
    if safetensors:
        found["safetensors"] = safetensors
    if pickle:
        found["pickle"] = pickle
    return found


def _weight_patterns(files: Sequence[str], allow_pickle: bool, name: str) -> list[str]:
    """Pick which weights to fetch from a repo's file list: safetensors, else opted-in pickle."""
    if any(f.endswith(".safetensors") for f in files):
        return SAFETENSORS_PATTERNS
    if any(re.fullmatch(r"pytorch_model.*\.bin", f) for f in files):
        if allow_pickle:
            return PICKLE_PATTERNS
        raise UnsafeWeightsError(
            f"Model '{name}' has only pickle (.bin) weights, which can run code when loaded. "
            "Pass --allow-pickle if you trust it, or use a revision with safetensors weights."
        )
    raise InvalidModelError(
        f"Model '{name}' has no PyTorch weights (no *.safetensors or pytorch_model*.bin files)."
    )


def _online_endpoint(ref: ModelRef) -> str | None:
    """The Hub endpoint to download ``ref`` from (``HF_ENDPOINT`` read now: a mirror, or a
    test stand-in), or the error that offline mode forbids it."""
    if is_offline():
        raise ModelNotCachedError(
            f"Cannot download '{ref}': HF_HUB_OFFLINE=1 forbids network access. Unset it and "
            f"run: quotegen download {ref}"
        )
    return hub_endpoint()


def _model_info(ref: ModelRef, endpoint: str | None, token: str | None) -> Any:
    from huggingface_hub import HfApi

    assert ref.repo_id is not None
    return HfApi(endpoint=endpoint).model_info(ref.repo_id, revision=ref.revision, token=token)


def fetch_model(
    ref: ModelRef,
    *,
    token: str | None = None,
    allow_pickle: bool = False,
    cache_dir: Path | None = None,
    local_dir: Path | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    force: bool = False,
    tqdm_class: Any = None,
) -> Path:
    """Download what loading ``ref`` needs from the Hub into the HF cache; return its path."""
    if ref.repo_id is None:
        raise InvalidModelReferenceError(f"'{ref}' is a local directory, not a Hub repo id.")
    from huggingface_hub import snapshot_download

    endpoint = _online_endpoint(ref)
    with hub_errors(str(ref)):
        info = _model_info(ref, endpoint, token)
        files = [s.rfilename for s in (info.siblings or [])]
        patterns = list(include) or [
            *LOAD_PATTERNS,
            *_weight_patterns(files, allow_pickle, str(ref)),
        ]
        path = snapshot_download(
            ref.repo_id,
            revision=info.sha or ref.revision,
            cache_dir=cache_dir,
            local_dir=local_dir,
            token=token,
            allow_patterns=patterns,
            ignore_patterns=list(exclude) or None,
            force_download=force,
            tqdm_class=tqdm_class,
            endpoint=endpoint,
        )
    local = Path(path)
    if local_dir is None and info.sha:
        _remember_revision(ref, info.sha, cache_dir)
    return local


def pick_gguf(files: Sequence[str], wanted: str, name: str) -> str:
    """The repo file that ``wanted`` names: a ``.gguf`` path, or a quantization tag matched
    against the GGUF file names as llama.cpp's ``-hf org/name:Q4_K_M`` does."""
    ggufs = sorted(f for f in files if f.lower().endswith(".gguf") and "mmproj" not in f.lower())
    if wanted.lower().endswith(".gguf"):
        if wanted in files:
            return wanted
        found: list[str] = []
    else:
        tag = wanted.lower()
        found = [
            f
            for f in ggufs
            if re.search(
                rf"(^|[^a-z0-9]){re.escape(tag)}([^a-z0-9]|$)", f.rsplit("/", 1)[-1].lower()
            )
        ]
        whole = [f for f in found if not re.search(r"-\d{5}-of-\d{5}\.gguf$", f)]
        if whole:
            return whole[0]
        if found:
            raise InvalidModelError(
                f"'{name}': {found[0]} is split into parts, which quotegen cannot load. "
                "Merge them with llama.cpp's gguf-split --merge, then pass the file."
            )
    listed = ", ".join(ggufs[:8]) or "none"
    raise ModelNotFoundError(
        f"'{name}': the repo has no GGUF file '{wanted}'. Its GGUF files: {listed}."
    )


def cached_gguf(ref: ModelRef, cache_dir: Path | None = None) -> Path | None:
    """The cached GGUF file a Hub reference names, if it was downloaded before."""
    assert ref.repo_id is not None
    assert ref.gguf is not None
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(
            snapshot_download(
                ref.repo_id, revision=ref.revision, cache_dir=cache_dir, local_files_only=True
            )
        )
    except Exception:  # not cached: huggingface_hub raises several kinds for that
        return None
    files = [str(p.relative_to(snapshot)) for p in snapshot.rglob("*.gguf")]
    try:
        return snapshot / pick_gguf(files, ref.gguf, str(ref))
    except QuotegenError:
        return None


def fetch_gguf(
    ref: ModelRef,
    *,
    token: str | None = None,
    cache_dir: Path | None = None,
    local_dir: Path | None = None,
    force: bool = False,
) -> Path:
    """Download the one GGUF file a Hub reference names (not every quantization in the repo)."""
    assert ref.repo_id is not None
    assert ref.gguf is not None
    from huggingface_hub import hf_hub_download

    endpoint = _online_endpoint(ref)
    with hub_errors(str(ref)):
        info = _model_info(ref, endpoint, token)
        filename = pick_gguf([s.rfilename for s in (info.siblings or [])], ref.gguf, str(ref))
        path = hf_hub_download(
            ref.repo_id,
            filename,
            revision=info.sha or ref.revision,
            cache_dir=cache_dir,
            local_dir=local_dir,
            token=token,
            force_download=force,
            endpoint=endpoint,
        )
    if local_dir is None and info.sha:
        _remember_revision(ref, info.sha, cache_dir)
    return Path(path)


def _remember_revision(ref: ModelRef, commit: str, cache_dir: Path | None) -> None:
    """Record ``revision -> commit`` in the cache so offline lookups of the ref work later.

    snapshot_download only records refs it resolved itself; we resolved the revision through
    model_info (to choose files first), so we write the ref file the same way it would.
    """
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    revision = ref.revision or "main"
    if ref.repo_id is None or revision == commit:
        return
    cache = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    folder = cache / repo_folder_name(repo_id=ref.repo_id, repo_type="model")
    ref_file = folder / "refs" / revision
    ref_file.parent.mkdir(parents=True, exist_ok=True)
    ref_file.write_text(commit)


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
