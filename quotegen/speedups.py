"""CPU speed-ups for inference: oneDNN linear layers, dynamic int8, a fused GELU, and the
weights file's memory mapping released.

Applied by ``quotegen.model.load_model`` to models on the CPU; each keeps the model's maths
(int8 within its measured perplexity cost, see docs/performance.md). torch and transformers
are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


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
