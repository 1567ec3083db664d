"""The Hugging Face Hub: downloads into the HF cache, Hub errors in words, the cache listed.

huggingface_hub is imported inside the functions (it reads its environment at import and costs
time); ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT`` are read when used, not at import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quotegen.config import hub_endpoint, hub_offline
from quotegen.errors import (
    InvalidModelError,
    InvalidModelReferenceError,
    ModelNotCachedError,
    ModelNotFoundError,
    QuotegenError,
    UnsafeWeightsError,
    hub_errors,
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
