"""Many rows in one KV cache: prompts left-padded together, a new batch's cache merged into
the running one (continuous batching), and padding trimmed once the rows that needed it have
left. torch and transformers are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def cache_argument(model: Any) -> str:
    """The forward argument that takes the KV cache: ``cache`` since transformers 5.24
    (``past_key_values`` is deprecated there and warns on every call), ``past_key_values``
    before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def returned_cache(out: Any) -> Any:
    """The KV cache a forward pass returned, under either name (see ``cache_argument``)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def left_padded(
    sequences: Sequence[Sequence[int]], pad: int, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids left-padded to one width, and the attention mask that hides the padding."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in sequences], device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=device)
    return ids, mask


def can_merge(past: Any) -> bool:
    """Whether new rows can join this KV cache: a plain ``DynamicCache`` of full-attention
    layers, whose tensors can be left-padded and concatenated (sliding-window, quantized or
    other caches only take new rows between batches)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    return type(past) is DynamicCache and all(type(layer) is DynamicLayer for layer in past.layers)


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    import torch

    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def merge_caches(
    past: Any, mask: torch.Tensor, new_past: Any, new_mask: torch.Tensor
) -> tuple[Any, torch.Tensor]:
    """Stack two batches' KV caches row-wise, left-padding the shorter one (masked out)."""
    import torch

    width = max(mask.shape[1], new_mask.shape[1])
    for layer, new_layer in zip(past.layers, new_past.layers, strict=True):
        layer.keys = torch.cat(
            [_left_pad(layer.keys, width, -2), _left_pad(new_layer.keys, width, -2)]
        )
        layer.values = torch.cat(
            [_left_pad(layer.values, width, -2), _left_pad(new_layer.values, width, -2)]
        )
    return past, torch.cat([_left_pad(mask, width, 1), _left_pad(new_mask, width, 1)])


def trim_padding(past: Any, mask: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """Drop leading cache columns that no remaining row attends to (left by departed rows)."""
    first = int(mask.any(dim=0).int().argmax())
    if first == 0 or not can_merge(past):
        return past, mask
    for layer in past.layers:
        layer.keys = layer.keys[..., first:, :]
        layer.values = layer.values[..., first:, :]
    return past, mask[:, first:]
