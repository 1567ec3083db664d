"""Weight precisions for CPU inference: the linear layers a lean family
(``quotegen.loading.lean``) is built with, and other models' linear layers swapped for.

- ``float32``: the weights as loaded, products through oneDNN;
- ``bfloat16`` (``float16``): bf16 (fp16) weights, inputs rounded the same way for the
  product, results in float32;
- ``int8``: weight-only int8, one scale per output channel (torch's ``_weight_int8pack_mm``);
- ``int4``: weight-only int4 in groups of 32 with a scale and a minimum each (the layout of
  GGUF's Q4_1; torch's ``_weight_int4pack_mm_for_cpu``).

Activations are never quantized (dynamic int8 quantizes them, and on a trained model that
cost +30 % bits per byte: see docs/performance.md). Every layer takes and returns float32;
only the weights and the product's inputs change precision.

A model merged from a LoRA adapter (its ``quotegen-lora/`` parts) is quantized without losing
the adapter: its low-rank update is subtracted, the base weights (a GGUF base's are already on
a 4-bit grid, so int4 keeps them exactly) are quantized, and the update runs beside them as
two small float32 products. The classes live at module level; torch is imported with the
module, which only loading's functions import. The private torch operations used here are
checked by ``supported`` (and ``onednn_linear_available``) before they are chosen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

PRECISIONS = ("float32", "bfloat16", "float16", "int8", "int4")
GROUP = 32  # int4 group size: GGUF's Q4_0/Q4_1 block
#: The output head's module names, as every lean family and transformers name it.
HEAD = ("lm_head",)

# (A [rank, in], B [out, rank]) with the adapter's scale folded into B, per module name.
LowRank = Mapping[str, tuple["torch.Tensor", "torch.Tensor"]]


class MakeLinear(Protocol):
    """Builds a linear layer from the names of the modules whose weights ``weight`` stacks
    (q, k and v together, say), the weight [out, in] and an optional bias."""

    def __call__(
        self, names: Sequence[str], weight: torch.Tensor, bias: torch.Tensor | None = None
    ) -> nn.Module: ...


def supported(precision: str) -> bool:
    """Whether this torch has the CPU kernels ``precision`` needs."""
    import torch

    if precision == "int8":
        return hasattr(torch.ops.aten, "_weight_int8pack_mm")
    if precision == "int4":
        return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")
    return precision in PRECISIONS


def onednn_linear_available() -> bool:
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


class LowRankSide(nn.Module):
    """``x @ A.T @ B.T`` in float32: a LoRA update kept beside a quantized weight. Not bf16:
    that saves 13 MB on the default model, but torch's bf16 products of these small shapes
    took 8.9 ms a decode step against 2.6 ms in float32 (``bench/step.py``)."""

    def __init__(self, parts: tuple[torch.Tensor, torch.Tensor]) -> None:
        super().__init__()
        a, b = parts
        self.a_t = nn.Parameter(a.float().t().contiguous(), requires_grad=False)
        self.b_t = nn.Parameter(b.float().t().contiguous(), requires_grad=False)

    def add_to(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(y, torch.mm(x.float(), self.a_t), self.b_t)


class QuantLinear(nn.Module):
    """Base of the precisions: flattens to 2-D, multiplies (each precision's
    ``product``), adds the bias and the side update."""

    product: Callable[[torch.Tensor], torch.Tensor]

    def __init__(self, side: LowRankSide | None, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.side = side
        self.bias = None if bias is None else nn.Parameter(bias.float(), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        y = self.product(flat).float()
        if self.bias is not None:
            y = y + self.bias
        if self.side is not None:
            y = self.side.add_to(y, flat)
        return y.view(*x.shape[:-1], y.shape[-1])


class Float32Linear(QuantLinear):
    def __init__(
        self, weight: torch.Tensor, side: LowRankSide | None, onednn: bool, bias: Any
    ) -> None:
        super().__init__(side, bias)
        self.weight = nn.Parameter(weight.float().contiguous(), requires_grad=False)
        self.onednn = onednn

    def product(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.onednn:  # beats the default GEMM on the few-row products of decoding
            out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
                x, self.weight, None, "none", [], ""
            )
            return out
        return F.linear(x, self.weight)


class HalfLinear(QuantLinear):
    """bf16 or fp16 weights; the input rounded to the same for the product."""

    def __init__(
        self, weight: torch.Tensor, side: LowRankSide | None, bias: Any, dtype: torch.dtype
    ) -> None:
        super().__init__(side, bias)
        self.weight = nn.Parameter(weight.to(dtype).contiguous(), False)

    def product(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.weight.dtype), self.weight)


class Int8Linear(QuantLinear):
    q: torch.Tensor
    scale: torch.Tensor

    def __init__(self, weight: torch.Tensor, side: LowRankSide | None, bias: Any) -> None:
        super().__init__(side, bias)
        weight = weight.float().contiguous()  # GPT-2's Conv1D weights come transposed
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        quantized = (weight / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
        self.register_buffer("q", quantized)
        self.register_buffer("scale", scale.to(torch.bfloat16))

    def product(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.aten._weight_int8pack_mm(
            x.to(torch.bfloat16), self.q, self.scale
        )
        return out

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """The weight's rows ``ids``, dequantized to float32: a tied model's embedding."""
        return self.q[ids].float() * self.scale[ids].float().unsqueeze(-1)


class Int4Linear(QuantLinear):
    def __init__(self, weight: torch.Tensor, side: LowRankSide | None, bias: Any) -> None:
        super().__init__(side, bias)
        rows, cols = weight.shape
        groups = weight.float().contiguous().reshape(rows, cols // GROUP, GROUP)
        low = groups.amin(dim=-1, keepdim=True)
        step = ((groups.amax(dim=-1, keepdim=True) - low) / 15).clamp(min=1e-12)
        codes = ((groups - low) / step).round().clamp(0, 15).to(torch.int32)
        # The kernel computes (code - 8) * scale + zero: zero = low + 8 * step.
        scales = torch.cat([step, low + 8 * step], dim=-1).transpose(0, 1).contiguous()
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.reshape(rows, cols), 2)
        self.register_buffer("packed", packed)
        self.register_buffer("scales", scales.to(torch.bfloat16))

    def product(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.to(torch.bfloat16), self.packed, GROUP, self.scales
        )
        return out


def linear_maker(precision: str, low_rank: LowRank | None = None) -> MakeLinear:
    """A function building a ``precision`` linear layer from (module names, weight).

    ``names`` are the modules whose weights ``weight`` stacks (q, k and v together, say);
    where ``low_rank`` has an update for them, it is taken out of the weight before
    quantizing and kept beside it. Under int4 the output head, and any weight int4 cannot
    group, are int8.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    onednn = precision == "float32" and onednn_linear_available()

    def make(names: Sequence[str], weight: Any, bias: Any = None) -> Any:
        side = None
        if low_rank and precision == "int4" and all(name in low_rank for name in names):
            a, b = _stacked([low_rank[name] for name in names])
            weight = weight.float() - b.float() @ a.float()
            side = LowRankSide((a, b))
        if precision == "float32":
            return Float32Linear(weight, side, onednn, bias)
        # The output head stays int8 under int4: it is the layer 4 bits hurt most (+1.3 %
        # bits per byte on the default model), and a GGUF's is usually 8-bit to begin with.
        groupable = weight.shape[1] % GROUP == 0 and weight.shape[0] % 16 == 0
        if precision == "int4" and groupable and tuple(names) != HEAD:
            return Int4Linear(weight, side, bias)
        if precision in ("int4", "int8"):
            return Int8Linear(weight, side, bias)
        half = torch.float16 if precision == "float16" else torch.bfloat16
        return HalfLinear(weight, side, bias, half)

    return make


def _stacked(parts: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:
    """One low-rank update for weights stacked by rows: the A matrices stacked, the B
    matrices placed block-diagonally (each output block sees its own A's rows only)."""
    import torch

    if len(parts) == 1:
        return parts[0]
    a = torch.cat([p[0] for p in parts])
    b = torch.block_diag(*(p[1] for p in parts))  # type: ignore[no-untyped-call]
    return a, b


def adapter_low_rank(model_dir: Path, *, shapes_only: bool = False) -> dict[str, tuple[Any, Any]]:
    """The LoRA update a merged model folder was made with, per module name: the parts the
    merge kept beside it (``conversion.LORA_FOLDER``), else those of the adapter its
    ``quotegen-source.json`` names; empty when there is none (not a merge, the adapter gone,
    or a LoRA variant other than plain LoRA). ``shapes_only``: meta tensors, nothing read."""
    from quotegen.loading.conversion import LORA_FOLDER, lora_parts

    adapter = model_dir / LORA_FOLDER
    if not adapter.is_dir():
        try:
            source = json.loads((model_dir / "quotegen-source.json").read_text("utf-8"))
            adapter = Path(source["adapter"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}
    return lora_parts(adapter, shapes_only=shapes_only) or {}
