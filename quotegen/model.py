"""The one place that turns a model reference into a loaded model.

``generate``, ``serve`` and ``download`` all go through here, so device and dtype choice,
offline handling, the safetensors preference and the translation of Hub errors cannot drift
apart between commands. torch, transformers and huggingface_hub are imported lazily: importing
this module is cheap.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quotegen.config import (
    BUNDLED_MODEL_NAME,
    DEFAULT_HUB_MODEL,
    DEFAULT_HUB_REVISION,
    debug_enabled,
)
from quotegen.errors import (
    DeviceError,
    DownloadError,
    HubUnreachableError,
    InvalidModelError,
    InvalidModelReferenceError,
    ModelAccessError,
    ModelNotCachedError,
    ModelNotFoundError,
    NoModelAvailableError,
    QuotegenError,
    UnsafeWeightsError,
)

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")
QUANTIZE_CHOICES = ("none", "int8")

#: What loading a model needs from a repo; weights are added by ``_weight_patterns``.
LOAD_PATTERNS = [
    "config.json",
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

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from: a Hub repo (maybe pinned to a revision) or a local directory."""

    name: str
    repo_id: str | None = None
    revision: str | None = None
    path: Path | None = None
    bundled: bool = False

    def __str__(self) -> str:
        if self.repo_id is not None and self.revision:
            return f"{self.repo_id}@{self.revision}"
        return self.name


@dataclass
class LoadedModel:
    """A tokenizer and causal LM ready to generate, plus what the interfaces report about it."""

    ref: ModelRef
    model: Any
    tokenizer: Any
    path: Path
    device: torch.device
    dtype: torch.dtype
    context_length: int
    eos_token_ids: list[int]
    pad_token_id: int
    commit: str | None = None
    quantize: str = "none"

    @property
    def name(self) -> str:
        return str(self.ref)

    @property
    def precision(self) -> str:
        """What the weights compute in, for status lines and /info: float32, int8, ..."""
        return precision_label(self.dtype, self.quantize)


def precision_label(dtype: torch.dtype, quantize: str) -> str:
    return quantize if quantize != "none" else str(dtype).removeprefix("torch.")


def bundled_model_dir() -> Path:
    """The directory of the model shipped as package data (may not exist yet)."""
    return Path(__file__).parent / "models" / BUNDLED_MODEL_NAME


def parse_model_ref(text: str) -> ModelRef:
    """Parse ``org/name``, ``org/name@revision``, a local directory, or ``quotegen-mini``."""
    text = text.strip()
    if not text:
        raise InvalidModelReferenceError("The model name is empty.")
    if "\x00" in text:
        raise InvalidModelReferenceError("The model name contains a NUL character.")
    if text == BUNDLED_MODEL_NAME:
        return ModelRef(name=text, path=bundled_model_dir(), bundled=True)
    looks_like_path = text.startswith((".", "/", "~"))
    try:
        candidate = Path(text).expanduser()
    except RuntimeError as exc:  # "~someone" for a user that does not exist
        raise InvalidModelReferenceError(f"Cannot expand '{text}': no such user.") from exc
    if looks_like_path or candidate.exists():
        return ModelRef(name=text, path=candidate)
    repo_id, _, revision = text.partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id or len(repo_id) > 96:
        raise InvalidModelReferenceError(
            f"'{text}' is neither a local directory nor a Hub repo id like 'org/name' or "
            "'org/name@revision'."
        )
    if "@" in text and not revision:
        raise InvalidModelReferenceError(f"'{text}' has an empty revision after '@'.")
    return ModelRef(name=text, repo_id=repo_id, revision=revision or None)


def default_model_ref() -> ModelRef:
    """The Hub quote model when it is cached, else the bundled model, else a clear error."""
    hub = ModelRef(name=DEFAULT_HUB_MODEL, repo_id=DEFAULT_HUB_MODEL, revision=DEFAULT_HUB_REVISION)
    if cached_snapshot(hub) is not None:
        return hub
    bundled = bundled_model_dir()
    if (bundled / "config.json").is_file():
        return ModelRef(name=BUNDLED_MODEL_NAME, path=bundled, bundled=True)
    raise NoModelAvailableError(
        f"No model is available offline: the default model {DEFAULT_HUB_MODEL} is not in the "
        "local cache. Run: quotegen download (or pass --model with a Hub repo id or a local "
        "model directory)."
    )


def resolve_model(name: str | None) -> ModelRef:
    """``--model`` / ``QUOTEGEN_MODEL`` when given, otherwise the default resolution order."""
    if name is not None and name.strip():
        return parse_model_ref(name)
    return default_model_ref()


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` read now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def cached_snapshot(ref: ModelRef, cache_dir: Path | None = None) -> Path | None:
    """The local snapshot of a Hub ref if it holds config and weights, else None."""
    assert ref.repo_id is not None
    from huggingface_hub import snapshot_download

    try:
        path = Path(
            snapshot_download(
                ref.repo_id,
                revision=ref.revision,
                cache_dir=cache_dir,
                local_files_only=True,
            )
        )
    except Exception:
        return None
    if (path / "config.json").is_file() and _weight_files(path):
        return path
    return None


def _weight_files(path: Path) -> dict[str, list[Path]]:
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


_INTERRUPTED = {
    "RemoteProtocolError",
    "ReadError",
    "ReadTimeout",
    "ChunkedEncodingError",
    "ProtocolError",
    "IncompleteRead",
}


@contextmanager
def hub_errors(ref: ModelRef | str) -> Iterator[None]:
    """Translate huggingface_hub and network failures into ``QuotegenError`` with a next step."""
    from huggingface_hub import errors as hf_errors

    name = str(ref)
    try:
        yield
    except QuotegenError:
        raise
    except hf_errors.GatedRepoError as exc:
        raise ModelAccessError(
            f"Model '{name}' is gated: accept its terms on the Hub, then set HF_TOKEN (or pass "
            "--token) to a token of that account."
        ) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise ModelNotFoundError(
            f"Revision not found for model '{name}'. Check the branch, tag or commit after '@'."
        ) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = (
            "It may be private: set HF_TOKEN (or pass --token) to a token that can read it."
            if status in (401, 403)
            else "Check the spelling; if it is private, set HF_TOKEN."
        )
        raise ModelNotFoundError(f"Model '{name}' was not found on the Hub. {hint}") from exc
    except hf_errors.LocalEntryNotFoundError as exc:
        raise ModelNotCachedError(
            f"Model '{name}' is not in the local cache and the Hub cannot be reached. "
            f"Run: quotegen download {name}"
        ) from exc
    except hf_errors.OfflineModeIsEnabled as exc:
        raise ModelNotCachedError(
            f"Model '{name}' is not in the local cache and HF_HUB_OFFLINE=1 forbids downloads. "
            f"Run: quotegen download {name} (with network access)"
        ) from exc
    except hf_errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise ModelAccessError(
                f"The Hub refused access to '{name}' (HTTP {status}). Set HF_TOKEN (or pass "
                "--token) to a token that can read it."
            ) from exc
        raise HubUnreachableError(
            f"The Hub answered HTTP {status} for '{name}'. Try again later."
        ) from exc
    except OSError as exc:
        import errno

        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise DownloadError(
                f"The disk is full while downloading '{name}' ({exc.strerror}). Free some space "
                "(or use --cache-dir elsewhere) and run the same command again; files already "
                "complete are kept."
            ) from exc
        raise HubUnreachableError(
            f"Could not reach the Hub for '{name}' ({type(exc).__name__}). Check your network; "
            f"a cached model works offline with HF_HUB_OFFLINE=1."
        ) from exc
    except Exception as exc:
        # huggingface_hub has used requests, httpx and httpx2 over the years: match by name.
        kinds = {(c.__module__.split(".")[0], c.__name__) for c in type(exc).__mro__}
        libraries = {module for module, _ in kinds} & {"httpx", "httpx2", "requests", "urllib3"}
        names = {n for _, n in kinds}
        if libraries and names & _INTERRUPTED:
            raise DownloadError(
                f"The download of '{name}' was interrupted ({type(exc).__name__}) after "
                "retrying. Run the same command again: files already complete are kept."
            ) from exc
        if libraries:
            raise HubUnreachableError(
                f"Could not reach the Hub for '{name}' ({type(exc).__name__}). Check your "
                "network; a cached model works offline with HF_HUB_OFFLINE=1."
            ) from exc
        raise


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
    if is_offline():
        raise ModelNotCachedError(
            f"Cannot download '{ref}': HF_HUB_OFFLINE=1 forbids network access. Unset it and "
            f"run: quotegen download {ref}"
        )
    from huggingface_hub import HfApi, snapshot_download

    # Read now, not at import: HF_ENDPOINT may point at a mirror (or a test stand-in).
    endpoint = os.environ.get("HF_ENDPOINT") or None
    with hub_errors(ref):
        info = HfApi(endpoint=endpoint).model_info(ref.repo_id, revision=ref.revision, token=token)
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


def locate_model(
    ref: ModelRef,
    *,
    token: str | None = None,
    allow_pickle: bool = False,
    download: bool = True,
    tqdm_class: Any = None,
) -> Path:
    """The local directory of ``ref``: the directory itself, its cached snapshot, or a download."""
    if ref.path is not None:
        if ref.bundled and not ref.path.is_dir():
            raise NoModelAvailableError(
                f"The bundled model '{BUNDLED_MODEL_NAME}' is not part of this installation. "
                "Run: quotegen download"
            )
        if not ref.path.exists():
            raise InvalidModelReferenceError(f"Model directory '{ref.path}' does not exist.")
        if not ref.path.is_dir():
            raise InvalidModelError(
                f"'{ref.path}' is a file; --model needs a directory made by save_pretrained."
            )
        return ref.path
    cached = cached_snapshot(ref)
    if cached is not None:
        return cached
    if is_offline() or not download:
        raise ModelNotCachedError(
            f"Model '{ref}' is not in the local cache"
            + (" and HF_HUB_OFFLINE=1 forbids downloads" if is_offline() else "")
            + f". Run: quotegen download {ref}"
        )
    return fetch_model(ref, token=token, allow_pickle=allow_pickle, tqdm_class=tqdm_class)


def choose_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device must exist here."""
    import torch

    wanted = device.strip().lower()
    if wanted == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(wanted)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(
            f"Unknown device '{device}'. Use one of: {', '.join(DEVICE_CHOICES)} (or cuda:N)."
        ) from exc
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"Device '{device}' is not available: this torch has no usable CUDA GPU. "
                "Use --device cpu."
            )
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise DeviceError(
                f"Device '{device}' does not exist: {torch.cuda.device_count()} GPU(s) here."
            )
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"Device '{device}' is not available here. Use --device cpu.")
    elif chosen.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"Device '{device}' is not supported. Use cpu, cuda or mps.")
    return chosen


def choose_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: float32 on CPU (fast half precision is rare there), bf16/fp16 on GPUs."""
    import torch

    wanted = dtype.strip().lower()
    if wanted == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if wanted not in table:
        raise DeviceError(f"Unknown dtype '{dtype}'. Use one of: {', '.join(DTYPE_CHOICES)}.")
    return table[wanted]


def check_quantize(quantize: str, device: torch.device, dtype: torch.dtype) -> str:
    """Validate ``--quantize``: ``int8`` is dynamic int8 for float32 models on the CPU."""
    import torch

    wanted = quantize.strip().lower()
    if wanted not in QUANTIZE_CHOICES:
        raise DeviceError(
            f"Unknown quantization '{quantize}'. Use one of: {', '.join(QUANTIZE_CHOICES)}."
        )
    if wanted == "int8":
        if device.type != "cpu":
            raise DeviceError(
                f"--quantize int8 runs on the CPU only, not on {device.type}. Add --device cpu, "
                "or use --dtype float16/bfloat16 on a GPU instead."
            )
        if dtype != torch.float32:
            raise DeviceError("--quantize int8 starts from float32 weights: drop --dtype.")
        if "fbgemm" not in torch.backends.quantized.supported_engines and (
            "x86" not in torch.backends.quantized.supported_engines
        ):
            raise DeviceError("This torch build has no int8 CPU kernels (fbgemm/x86).")
    return wanted


def _replace_modules(model: Any, make: Callable[[Any], Any | None]) -> int:
    """Replace every submodule for which ``make`` returns a new module; the count replaced."""
    swaps = [
        (parent, name, new)
        for parent in list(model.modules())
        for name, child in list(parent.named_children())
        if (new := make(child)) is not None
    ]
    for parent, name, new in swaps:
        setattr(parent, name, new)
    return len(swaps)


def _float_linear(module: Any) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight [out, in], bias) of a float32 linear layer, else None. GPT-2's ``Conv1D``
    stores its weight [in, out]: it is given as a transposed view."""
    import torch
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    if type(module) is nn.Linear and module.weight.dtype == torch.float32:
        weight = module.weight.detach()
    elif isinstance(module, Conv1D) and module.weight.dtype == torch.float32:
        weight = module.weight.detach().t()
    else:
        return None
    return weight, None if module.bias is None else module.bias.detach()


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 on every linear layer: int8 weights (one scale per output channel),
    activations quantized on the fly, products in fbgemm's int8 kernels.

    GPT-2's ``Conv1D`` layers are quantized too, straight from their weights; the tied output
    head gets its own int8 copy while the input embedding stays float32.
    """
    import warnings

    import torch
    from torch import nn

    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = "x86" if "x86" in engines else "fbgemm"
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao (a separate, heavier
        # install) but still ships with torch and runs fbgemm's int8 kernels; its deprecation
        # notices are not the user's business.
        warnings.simplefilter("ignore")
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
        from torch.ao.quantization import per_channel_dynamic_qconfig

        def int8(module: Any) -> Any:
            found = _float_linear(module)
            if found is None:
                return None
            weight, bias = found
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            layer.weight = nn.Parameter(weight, requires_grad=False)
            if bias is not None:
                layer.bias = nn.Parameter(bias.clone(), requires_grad=False)
            layer.qconfig = per_channel_dynamic_qconfig  # type: ignore[assignment]
            return DynamicInt8Linear.from_float(layer)  # type: ignore[no-untyped-call]

        _replace_modules(model, int8)
    return model


def _onednn_linear_available() -> bool:
    """Whether this torch can run linear layers through oneDNN (and gets them right)."""
    import torch

    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    try:
        x, w, b = torch.randn(3, 8), torch.randn(5, 8), torch.randn(5)
        return bool(torch.allclose(op(x, w, b, "none", [], ""), x @ w.t() + b, atol=1e-4))
    except (RuntimeError, TypeError):
        return False


def _fast_linear_class() -> Any:
    import torch
    from torch import nn

    class FastLinear(nn.Module):
        """``x @ weight.T + bias`` through oneDNN, which beats the default CPU GEMM on the
        few-row products of decoding (1 to 32 rows) by up to 2x on the CPUs measured."""

        def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
            super().__init__()
            self.weight = nn.Parameter(weight, requires_grad=False)
            self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(-1, x.shape[-1])
            out = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, "none", [], "")
            result: torch.Tensor = out.view(*x.shape[:-1], out.shape[-1])
            return result

    return FastLinear


def use_fast_linears(model: Any) -> int:
    """Route a float32 model's linear layers (``nn.Linear``, GPT-2's ``Conv1D``, the output
    head) through oneDNN. Weights keep their values; Conv1D's [in, out] weights are stored
    transposed once, and a tied output head keeps sharing the input embedding's weight."""
    if not _onednn_linear_available():
        return 0
    fast = _fast_linear_class()

    def make(module: Any) -> Any:
        found = _float_linear(module)
        if found is None:
            return None
        weight, bias = found
        return fast(weight.contiguous(), bias)

    return _replace_modules(model, make)


def _fuse_gelu(model: Any) -> int:
    """Swap transformers' ``NewGELUActivation`` (GPT-2's tanh GELU written as six tensor ops)
    for torch's fused ``GELU(approximate="tanh")``: the same formula in one kernel."""
    from torch import nn
    from transformers.activations import NewGELUActivation

    return _replace_modules(
        model,
        lambda module: nn.GELU(approximate="tanh") if type(module) is NewGELUActivation else None,
    )


def _tensor_slots(model: Any) -> Iterator[tuple[dict[str, Any], str, Any]]:
    for module in model.modules():
        for table in (module._parameters, module._buffers):
            for name, tensor in table.items():
                if tensor is not None:
                    yield table, name, tensor


def _own_tensors(model: Any, loaded: set[int]) -> None:
    """Copy the tensors that still point into the weights file (``loaded``) into memory.

    The weights are memory-mapped: while any tensor of the file stays alive the whole mapping
    does, and every page read counts again next to the converted copies (a process serving a
    converted 124M GPT-2 sat at 1.0 GB instead of 0.83 GB). Each is copied once; ties stay
    tied.
    """
    import torch

    copies: dict[int, Any] = {}
    for table, name, tensor in list(_tensor_slots(model)):
        key = tensor.data_ptr()
        if key not in loaded:
            continue
        if key not in copies:
            copies[key] = tensor.detach().clone()
        if isinstance(tensor, torch.nn.Parameter):
            tensor.data = copies[key]
        else:
            table[name] = copies[key]


def optimize_for_inference(model: Any, device: torch.device, quantize: str) -> Any:
    """CPU speed-ups: int8 on request, else oneDNN linear layers (same maths, float32); the
    fused GELU either way."""
    if device.type != "cpu":
        return model
    loaded = {tensor.data_ptr() for _, _, tensor in _tensor_slots(model)}
    if quantize == "int8":
        model = quantize_int8(model)
    else:
        use_fast_linears(model)
    _fuse_gelu(model)
    _own_tensors(model, loaded)
    return model


def check_model_dir(path: Path, *, allow_pickle: bool, name: str) -> None:
    """Fail early, with a useful message, on directories that cannot be a model."""
    if not (path / "config.json").is_file():
        raise InvalidModelError(
            f"'{path}' is not a model directory: it has no config.json. Point --model at a "
            "folder made by save_pretrained (config.json, tokenizer files, *.safetensors)."
        )
    weights = _weight_files(path)
    if not weights:
        raise InvalidModelError(
            f"Model '{name}' in '{path}' has no weights (*.safetensors): the directory is "
            "incomplete. Re-save it, or re-download it with quotegen download."
        )
    if "safetensors" not in weights and not allow_pickle:
        raise UnsafeWeightsError(
            f"Model '{name}' has only pickle (.bin) weights, which can run code when loaded. "
            "Pass --allow-pickle if you trust it."
        )


def quiet_transformers() -> None:
    """No library warnings or progress bars on stderr unless QUOTEGEN_DEBUG is set."""
    import transformers

    if debug_enabled():
        return
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _context_length(config: Any, tokenizer: Any) -> int:
    for attr in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return 1024


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, model.config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.append(value)
        elif isinstance(value, list):
            ids.extend(v for v in value if isinstance(v, int))
    return sorted(set(ids))


def load_model(
    ref: ModelRef,
    *,
    device: str = "auto",
    dtype: str = "auto",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    token: str | None = None,
    download: bool = True,
    tqdm_class: Any = None,
    on_status: Callable[[str], None] | None = None,
    quantize: str = "none",
    optimize: bool = True,
) -> LoadedModel:
    """Locate (download if needed and allowed), check and load a tokenizer + causal LM.

    ``optimize`` applies the inference-only CPU speed-ups (frozen weights): training passes
    False to get the model exactly as saved.
    """
    torch_device = choose_device(device)
    torch_dtype = choose_dtype(dtype, torch_device)
    quantize = check_quantize(quantize, torch_device, torch_dtype)
    path = locate_model(
        ref, token=token, allow_pickle=allow_pickle, download=download, tqdm_class=tqdm_class
    )
    check_model_dir(path, allow_pickle=allow_pickle, name=str(ref))
    if on_status is not None:
        on_status(f"Loading {ref} on {torch_device} ({precision_label(torch_dtype, quantize)})")

    quiet_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise InvalidModelError(
            f"Could not load the tokenizer of '{ref}' from '{path}' ({_short(exc)}). The "
            "tokenizer files are missing or corrupted; re-save or re-download the model."
        ) from exc
    has_safetensors = "safetensors" in _weight_files(path)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=torch_dtype,
            use_safetensors=True if has_safetensors else None,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
        )
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise InvalidModelError(
                f"Model '{ref}' needs custom code from its repository. Pass --trust-remote-code "
                "only if you trust its author."
            ) from exc
        raise InvalidModelError(
            f"Could not load the weights of '{ref}' from '{path}' ({_short(exc)})."
        ) from exc
    except Exception as exc:
        raise InvalidModelError(
            f"Could not load the weights of '{ref}' from '{path}' ({_short(exc)}). The files "
            "are incomplete or corrupted; re-save or re-download the model."
        ) from exc
    missing = [k for k in info.get("missing_keys", []) if "lm_head" not in k]
    if missing:
        raise InvalidModelError(
            f"The weights of '{ref}' in '{path}' are incomplete: {len(missing)} tensors are "
            f"missing (e.g. {missing[0]}). Re-save or re-download the model."
        )
    model.to(torch_device)
    model.eval()
    if optimize or quantize != "none":
        model = optimize_for_inference(model, torch_device, quantize)

    eos_ids = _eos_ids(model, tokenizer)
    if tokenizer.pad_token_id is None:
        # GPT-2 has no pad token; left-padded positions are masked out, so any id will do.
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token else None
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = eos_ids[0] if eos_ids else 0
    tokenizer.padding_side = "left"
    commit = (
        path.name if ref.repo_id is not None and re.fullmatch(r"[0-9a-f]{40}", path.name) else None
    )
    return LoadedModel(
        ref=ref,
        model=model,
        tokenizer=tokenizer,
        path=path,
        device=torch_device,
        dtype=torch_dtype,
        context_length=_context_length(model.config, tokenizer),
        eos_token_ids=eos_ids,
        pad_token_id=int(pad_id),
        commit=commit,
        quantize=quantize,
    )


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass(frozen=True)
class LocalModel:
    """A model usable without network: in the HF cache, or bundled."""

    name: str
    revision: str | None
    commit: str | None
    size_bytes: int
    path: Path
    is_default: bool = False


def _is_causal_lm(snapshot: Path) -> bool:
    import json

    try:
        config = json.loads((snapshot / "config.json").read_text())
    except (OSError, ValueError):
        return False
    architectures = config.get("architectures") or []
    return any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


def list_local_models(cache_dir: Path | None = None) -> list[LocalModel]:
    """The bundled model and every cached revision that looks like a loadable causal LM."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        default: ModelRef | None = default_model_ref()
    except QuotegenError:
        default = None
    found: list[LocalModel] = []
    bundled = bundled_model_dir()
    if (bundled / "config.json").is_file():
        size = sum(p.stat().st_size for p in bundled.rglob("*") if p.is_file())
        is_default = bool(default is not None and default.bundled)
        found.append(LocalModel(BUNDLED_MODEL_NAME, None, None, size, bundled, is_default))
    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return found
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            snapshot = Path(rev.snapshot_path)
            if not _is_causal_lm(snapshot) or not _weight_files(snapshot):
                continue
            names: list[str | None] = [*sorted(rev.refs)] or [None]
            for name in names:
                is_default = bool(
                    default is not None
                    and default.repo_id == repo.repo_id
                    and (default.revision or "main") == (name or rev.commit_hash)
                )
                found.append(
                    LocalModel(
                        repo.repo_id, name, rev.commit_hash, rev.size_on_disk, snapshot, is_default
                    )
                )
    return found
