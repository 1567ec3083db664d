"""The CPU inference form of a loaded model: linear layers in the chosen precision
(``quantization``), a Llama's lean forward pass (``lean``), GPT-2's GELU fused, and
the weights file's memory mapping released.

Applied by ``quotegen.loading.model.load_model`` to models on the CPU; the quality cost of each
precision is measured in docs/performance.md. torch and transformers are imported inside the
functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from quotegen.loading.quantization import MakeLinear


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
    """(weight [out, in], bias) of a float linear layer, else None. GPT-2's ``Conv1D``
    stores its weight [in, out]: it is given as a transposed view."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    if type(module) is nn.Linear:
        weight = module.weight.detach()
    elif isinstance(module, Conv1D):
        weight = module.weight.detach().t()
    else:
        return None
    return weight, None if module.bias is None else module.bias.detach()


def replace_linears(model: Any, make: MakeLinear) -> int:
    """Swap every linear layer (``nn.Linear``, GPT-2's ``Conv1D``, the output head) for the
    one ``make`` builds from its weight and bias (``quantization.linear_maker``)."""
    names = {id(module): name for name, module in model.named_modules()}

    def swap(module: Any) -> Any:
        found = _float_linear(module)
        if found is None:
            return None
        weight, bias = found
        return make((names.get(id(module), ""),), weight, bias)

    return _replace_modules(model, swap)


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


class MappedTensors(Mapping[str, Any]):
    """A checkpoint's tensors (every ``*.safetensors`` file of a folder), each read through
    a memory map of its own when asked for.

    A tensor used as stored (a bf16 weight computed in bf16) stays file-backed: no copy. One
    that is converted or concatenated (q, k and v into one product) is read once and its map
    dropped with it, so the pages read never count beside the copy made of them, and the
    whole model is never in memory twice.
    """

    def __init__(self, model_dir: Path) -> None:
        from safetensors import safe_open

        self._files: dict[str, Path] = {}
        for weights in sorted(model_dir.glob("*.safetensors")):
            with safe_open(str(weights), "pt") as handle:
                self._files.update(dict.fromkeys(handle.keys(), weights))

    def __getitem__(self, key: str) -> Any:
        from safetensors import safe_open

        with safe_open(str(self._files[key]), "pt") as handle:
            return handle.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


class _ShapeTensors(MappedTensors):
    """A checkpoint's tensors as empty meta tensors of their shapes and dtypes: what builds
    a model's skeleton without reading (or computing on) any weight."""

    def __getitem__(self, key: str) -> Any:
        import torch
        from safetensors import safe_open

        with safe_open(str(self._files[key]), "pt") as handle:
            part = handle.get_slice(key)
            shape, dtype = part.get_shape(), _SAFETENSORS_DTYPES[part.get_dtype()]
        return torch.empty(shape, dtype=getattr(torch, dtype), device="meta")


_SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


#: Bumped when the packed weights' layout changes, so caches of the old one are redone.
PACKED_FORMAT = 3


def packed_folder(model_dir: Path, precision: str, low_rank: int = 0) -> Path:
    """Where a model's weights packed in ``precision`` (int4, int8) are cached: keyed by the
    weight files (their place, size and time), the precision, how many LoRA updates are kept
    beside them and torch's version (the packed layout is torch's)."""
    import hashlib

    import torch

    from quotegen.loading.cache import cache_root

    key = f"v{PACKED_FORMAT}|{precision}|{low_rank}|{torch.__version__}"
    digest = hashlib.sha256(key.encode())
    for weights in sorted([*model_dir.glob("*.safetensors"), *model_dir.glob("*/*.safetensors")]):
        stat = weights.stat()
        digest.update(f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return cache_root() / "packed" / digest.hexdigest()[:40]


def load_lean(model_dir: Path, config: dict[str, Any], precision: str) -> Any:
    """A plain Llama checkpoint (safetensors) straight into its lean inference form, its
    linear layers in ``precision``: no transformers model is built (``lean``), and the
    weights are read tensor by tensor (``MappedTensors``).

    int4 and int8 weights are packed once and cached (``packed_folder``): a later load
    builds the model's skeleton on the meta device and maps the packed weights in, so a
    quantized load costs no more than a plain one."""
    from quotegen.loading import lean
    from quotegen.loading.quantization import adapter_low_rank, linear_maker

    if precision not in ("int4", "int8"):
        return lean.from_tensors(config, MappedTensors(model_dir), linear_maker(precision))
    # The LoRA parts' shapes say where updates sit; their values are read only to pack.
    shapes = adapter_low_rank(model_dir, shapes_only=True) if precision == "int4" else {}
    cached = packed_folder(model_dir, precision, len(shapes))
    if (cached / "model.safetensors").is_file():
        skeleton = linear_maker(precision, shapes)
        model = lean.from_tensors(config, _ShapeTensors(model_dir), skeleton)
        # Copied out of the file as read (the quantized kernels need memory of their own);
        # each tensor's map goes with it, so the file's pages never count beside the copy.
        packed = MappedTensors(cached)
        model.load_state_dict({name: packed[name].clone() for name in packed}, assign=True)
        return model
    low_rank = adapter_low_rank(model_dir) if shapes else {}
    model = lean.from_tensors(config, MappedTensors(model_dir), linear_maker(precision, low_rank))
    _save_packed(model, cached)
    return model


def _save_packed(model: Any, folder: Path) -> None:
    """The packed weights written whole into the cache; a read-only cache only costs packing
    again next time."""
    import contextlib

    from safetensors.torch import save_file

    from quotegen.loading.cache import staged_folder

    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    with contextlib.suppress(OSError), staged_folder(folder) as staging:
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text("{}")  # what marks a finished folder


def optimize_for_inference(model: Any, precision: str, model_dir: Path | None = None) -> Any:
    """The CPU inference form of ``model`` with its linear layers in ``precision`` (see
    ``quantization``): a plain Llama becomes a ``lean family's model (``quotegen.loading.lean``)``;
    other models get their linear layers swapped and GPT-2's GELU fused. For int4, the LoRA
    update of a merged model (``model_dir``'s provenance) is kept beside the base weights."""
    from quotegen.loading import lean
    from quotegen.loading.quantization import adapter_low_rank, linear_maker

    loaded = {tensor.data_ptr() for _, _, tensor in _tensor_slots(model)}
    low_rank = adapter_low_rank(model_dir) if precision == "int4" and model_dir else {}
    make = linear_maker(precision, low_rank)
    if lean.supports(model):
        model = lean.lean(model, make)
    else:
        replace_linears(model, make)
        _fuse_gelu(model)
    _own_tensors(model, loaded)
    return model
