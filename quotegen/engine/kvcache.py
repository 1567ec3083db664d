"""Many rows in one KV cache: prompts left-padded together, a new batch's cache merged into
the running one (continuous batching), padding trimmed once the rows that needed it have
left, and ``DecodeBatch``, the state the decode loop steps. torch and transformers are
imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from quotegen.engine.rows import Row


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


class DecodeBatch:
    """The rows decoding together and what they share: the KV cache, the attention mask (a
    column per cached position, one more for the input while stepping), each row's next input
    token and its position, and the tokens each row has seen (for the repetition penalty;
    None while no row uses it). The decode loop steps it, lets new rows join it and drops the
    finished ones; nothing else touches these tensors."""

    def __init__(self, model: Any, device: Any, extras: dict[str, Any]) -> None:
        self.model = model
        self.device = device
        self.extras = extras
        self.cache_kwarg = cache_argument(model)
        self.rows: list[Row] = []
        self.past: Any = None
        self.mask: Any = None
        self.ids: Any = None
        self.pos: Any = None
        self.presence: Any = None

    def can_join(self) -> bool:
        """Whether new rows may join now (always between batches)."""
        return not self.rows or can_merge(self.past)

    def step(self) -> torch.Tensor:
        """One forward step of the running rows: each one's next-token logits (float32)."""
        out = self.model(
            input_ids=self.ids,
            attention_mask=self.mask,
            position_ids=self.pos,
            **{self.cache_kwarg: self.past},
            use_cache=True,
            **self.extras,
        )
        self.past = returned_cache(out)
        logits: torch.Tensor = out.logits[:, -1, :].float()
        return logits

    def join(self, rows: Sequence[Row], past: Any, mask: torch.Tensor, pos: torch.Tensor) -> None:
        """Add prefilled rows (their cache, mask and positions) after the running ones."""
        import torch

        if self.rows:
            self.past, self.mask = merge_caches(self.past, self.mask, past, mask)
            self.pos = torch.cat([self.pos, pos])
        else:
            self.past, self.mask, self.pos = past, mask, pos
        self.rows = self.rows + list(rows)
        penalized = any(r.settings.repetition_penalty != 1.0 for r in self.rows)
        self.presence = self._seen() if penalized else None

    def advance(self, chosen: torch.Tensor, keep: Sequence[int]) -> None:
        """After a step chose ``chosen``: keep only the rows at ``keep`` (the unfinished ones),
        and make each kept row's token its next input."""
        import torch

        if len(keep) < len(self.rows):
            if not keep:
                self.rows, self.past, self.mask, self.ids, self.pos = [], None, None, None, None
                self.presence = None
                return
            index = torch.tensor(keep, device=self.device)
            self.past.batch_select_indices(index)
            chosen, self.mask, self.pos = chosen[index], self.mask[index], self.pos[index]
            if self.presence is not None:
                self.presence = self.presence[index]
            self.rows = [self.rows[j] for j in keep]
            self.past, self.mask = trim_padding(self.past, self.mask)
        if self.presence is not None:
            self.presence[torch.arange(len(self.rows), device=self.device), chosen] = True
        self.ids = chosen[:, None]
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        self.pos = self.pos + 1

    def _seen(self) -> torch.Tensor:
        """Which tokens each row has seen so far (prompt and output), for the penalty."""
        import torch

        vocab = self.model.config.vocab_size
        presence = torch.zeros((len(self.rows), vocab), dtype=torch.bool, device=self.device)
        for j, row in enumerate(self.rows):
            seen = [i for i in (*row.prompt_ids, *row.token_ids) if 0 <= i < vocab]
            presence[j, seen] = True
        return presence
