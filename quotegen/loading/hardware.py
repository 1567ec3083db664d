"""What this machine computes in, and so what quotegen stores: whether the CPU multiplies
bf16 natively, and the precision a prepared model's weights are kept in. torch is imported
inside the functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX): bf16 is then faster
    than float32 rather than emulated."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    capability = torch.backends.cpu.get_cpu_capability()
    return bool(check is not None and check()) and capability in ("AVX512", "AVX512_BF16", "AMX")


def storage_dtype() -> torch.dtype:
    """The precision a prepared model (a merge, a conversion quotegen makes for inference)
    is stored in: bf16 where the CPU computes in it (``auto``'s choice there, so loading
    needs no conversion and no float32 copy ever exists), else float32."""
    import torch

    return torch.bfloat16 if cpu_has_bf16() else torch.float32
