"""The CPU inference form of a loaded model: linear layers in the chosen precision
(``quantization``), a Llama's lean forward pass (``leanllama``), GPT-2's GELU fused, and
the weights file's memory mapping released.

Applied by ``quotegen.loading.model.load_model`` to models on the CPU; the quality cost of each
precision is measured in docs/performance.md. torch and transformers are imported inside the
functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def load_lean(model_dir: Path, config: dict[str, Any], precision: str) -> Any:
    """A plain Llama checkpoint (safetensors) straight into its lean inference form, its
    linear layers in ``precision``: no transformers model is built (``leanllama``)."""
    from safetensors.torch import load_file

    from quotegen.loading import leanllama
    from quotegen.loading.quantization import adapter_low_rank, linear_maker

    tensors: dict[str, Any] = {}
    for weights in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(weights))
    low_rank = adapter_low_rank(model_dir) if precision == "int4" else {}
    model = leanllama.from_tensors(
        leanllama.LeanConfig(config), tensors, linear_maker(precision, low_rank)
    )
    _own_tensors(model, {tensor.data_ptr() for tensor in tensors.values()})
    return model


def optimize_for_inference(model: Any, precision: str, model_dir: Path | None = None) -> Any:
    """The CPU inference form of ``model`` with its linear layers in ``precision`` (see
    ``quantization``): a plain Llama becomes a ``leanllama.LeanLlama``;
    other models get their linear layers swapped and GPT-2's GELU fused. For int4, the LoRA
    update of a merged model (``model_dir``'s provenance) is kept beside the base weights."""
    from quotegen.loading import leanllama
    from quotegen.loading.quantization import adapter_low_rank, linear_maker

    loaded = {tensor.data_ptr() for _, _, tensor in _tensor_slots(model)}
    low_rank = adapter_low_rank(model_dir) if precision == "int4" and model_dir else {}
    make = linear_maker(precision, low_rank)
    if leanllama.supports(model):
        model = leanllama.lean(model, make)
    else:
        replace_linears(model, make)
        _fuse_gelu(model)
    _own_tensors(model, loaded)
    return model
