"""Perplexity of a causal LM on quotes, the way seed 2 reported it: token level.

Each quote is scored as ``tokens + end-of-text``; every token after the first is predicted from
the ones before it. Perplexity is ``exp(total negative log-likelihood / predicted tokens)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from quotegen.schemas import EvalReport

if TYPE_CHECKING:
    import torch

    from quotegen.inputs import Example
    from quotegen.loading.model import LoadedModel


def right_padded(
    sequences: Sequence[Sequence[int]], pad: int, device: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids right-padded to one width, and the mask of the real tokens (training and
    scoring; generation pads on the left)."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.tensor([[*s, *[pad] * (width - len(s))] for s in sequences], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=device)
    return ids, mask


def quote_examples(tokenizer: Any, quotes: Sequence[str], max_length: int) -> list[list[int]]:
    """Each quote's tokens (with the tokenizer's own start token, if it adds one) followed by
    end-of-text, cut to ``max_length``."""
    eos = tokenizer.eos_token_id
    encoded = tokenizer(list(quotes), add_special_tokens=True)["input_ids"]
    return [([*ids, eos] if eos is not None else list(ids))[:max_length] for ids in encoded]


def encode_examples(
    tokenizer: Any, examples: Sequence[Example], max_length: int
) -> list[tuple[list[int], int]]:
    """Each example's tokens and how many of the first are context, not learned.

    A plain quote is ``quote_examples``' (nothing held back: its first token is never
    predicted anyway). A conversation is its earlier turns rendered by the tokenizer's chat
    template with the assistant's turn opened (tokenized as the engine tokenizes a rendered
    chat), then the reply and the template's end of turn, which alone are learned."""
    from quotegen.inputs import Conversation

    plain = [e for e in examples if isinstance(e, str)]
    encoded = iter(quote_examples(tokenizer, plain, max_length) if plain else [])
    out: list[tuple[list[int], int]] = []
    for example in examples:
        if not isinstance(example, Conversation):
            out.append((next(encoded), 0))
            continue
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("conversations need a tokenizer with a chat template")
        context = tokenizer.apply_chat_template(
            example.as_dicts(-1), add_generation_prompt=True, tokenize=False
        )
        whole = tokenizer.apply_chat_template(example.as_dicts(), tokenize=False)
        if not whole.startswith(context):
            raise ValueError("the chat template renders the reply's turn unlike a new turn")
        bos = getattr(tokenizer, "bos_token", None)
        special = not (bos and context.startswith(bos))
        head = tokenizer(context, add_special_tokens=special)["input_ids"]
        reply = tokenizer(whole[len(context) :].rstrip(), add_special_tokens=False)["input_ids"]
        out.append(([*head, *reply][:max_length], len(head)))
    return out


def learned_mask(mask: torch.Tensor, held: Sequence[int]) -> torch.Tensor:
    """``mask`` with each row's first ``held[i]`` positions cleared (context, not learned)."""
    import torch

    positions = torch.arange(mask.shape[1], device=mask.device)
    limits = torch.tensor(list(held), device=mask.device)[:, None]
    return mask * (positions[None, :] >= limits)


def negative_log_likelihood(
    model: Any,
    tokenizer: Any,
    quotes: Sequence[Example],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[float, int]:
    """Summed NLL (nats) and the number of predicted tokens over ``quotes`` (a conversation's
    reply only)."""
    import torch

    from quotegen.loading.model import context_length

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)
    examples = encode_examples(tokenizer, quotes, max_length or context_length(model.config))
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            rows = examples[start : start + batch_size]
            ids, mask = right_padded([r for r, _ in rows], pad, device)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            picked = logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            valid = learned_mask(mask, [h for _, h in rows])[:, 1:].bool()
            total -= float(picked[valid].sum())
            count += int(valid.sum())
            if on_batch is not None:
                on_batch(len(rows))
    return total, count


def perplexity(model: Any, tokenizer: Any, quotes: Sequence[Example], **options: Any) -> float:
    """Token-level perplexity of ``model`` on ``quotes`` (options: see
    ``negative_log_likelihood``)."""
    return _exp_mean(*negative_log_likelihood(model, tokenizer, quotes, **options))


def _exp_mean(total: float, count: int) -> float:
    return math.exp(total / count) if count else math.nan


def bits_per_byte(
    model: Any,
    tokenizer: Any,
    quotes: Sequence[str],
    *,
    batch_size: int = 32,
    frame_token: str | None = None,
) -> tuple[float, float]:
    """Bits per UTF-8 byte of ``quotes`` (each quote's bytes plus one for its end), and the
    share of tokens that are the unknown token (they hide the bits of what they replace).

    Unlike perplexity this compares across tokenizers: every token is predicted, the first
    one after a start token (end-of-text when the tokenizer adds none). ``frame_token``
    puts that token before and after each quote instead of the tokenizer's own, so a base
    and its fine-tuned adapter are scored with the same conditioning.
    """
    import torch

    from quotegen.loading.model import context_length

    eos = tokenizer.eos_token_id
    limit = context_length(model.config)
    examples = []
    frame = None if frame_token is None else tokenizer.convert_tokens_to_ids(frame_token)
    if frame is not None:
        encoded = tokenizer(list(quotes), add_special_tokens=False)["input_ids"]
        examples = [[frame, *ids, frame][:limit] for ids in encoded]
    else:
        for example in quote_examples(tokenizer, quotes, limit):
            if example[0] not in (eos, tokenizer.bos_token_id):
                example = [eos, *example][:limit]
            examples.append(example)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)
    device = next(model.parameters()).device
    nats, tokens, unknown = 0.0, 0, 0
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            rows = examples[start : start + batch_size]
            ids, mask = right_padded(rows, pad, device)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            picked = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])
            valid = mask[:, 1:].bool()
            nats -= float(picked[..., 0][valid].sum())
            tokens += int(valid.sum())
            if tokenizer.unk_token_id not in (None, eos, frame):
                unknown += int((ids[:, 1:][valid] == tokenizer.unk_token_id).sum())
    size = sum(len(q.encode("utf-8")) + 1 for q in quotes)
    return nats / math.log(2) / size, unknown / max(1, tokens)


def evaluate(
    loaded: LoadedModel,
    quotes: Sequence[str],
    *,
    data: str,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> EvalReport:
    """``quotegen eval``: perplexity of a loaded model on quotes, as a report."""
    started = time.perf_counter()
    total, count = negative_log_likelihood(
        loaded.model, loaded.tokenizer, quotes, batch_size=batch_size, on_batch=on_batch
    )
    return EvalReport(
        model=loaded.name,
        precision=loaded.info().precision,
        data=data,
        quotes=len(quotes),
        tokens=count,
        nll_per_token=total / count if count else None,
        perplexity=_exp_mean(total, count),
        seconds=round(time.perf_counter() - started, 3),
    )
