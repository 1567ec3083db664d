"""Perplexity of a causal LM on quotes, the way seed 2 reported it: token level.

Each quote is scored as ``tokens + end-of-text``; every token after the first is predicted from
the ones before it. Perplexity is ``exp(total negative log-likelihood / predicted tokens)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def negative_log_likelihood(
    model: Any,
    tokenizer: Any,
    quotes: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[float, int]:
    """Summed NLL (nats) and the number of predicted tokens over ``quotes``."""
    import torch

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)
    limit = max_length or getattr(model.config, "n_positions", None) or 1024
    encoded = tokenizer(list(quotes), add_special_tokens=False)["input_ids"]
    examples = [([*ids, eos] if eos is not None else ids)[:limit] for ids in encoded]
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            rows = examples[start : start + batch_size]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
            mask = torch.tensor(
                [[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device
            )
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = ids[:, 1:]
            picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            valid = mask[:, 1:].bool()
            total -= float(picked[valid].sum())
            count += int(valid.sum())
            if on_batch is not None:
                on_batch(len(rows))
    return total, count


def perplexity(
    model: Any,
    tokenizer: Any,
    quotes: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> float:
    """Token-level perplexity of ``model`` on ``quotes``."""
    total, count = negative_log_likelihood(
        model, tokenizer, quotes, batch_size=batch_size, max_length=max_length, on_batch=on_batch
    )
    if count == 0:
        return math.nan
    return math.exp(total / count)
