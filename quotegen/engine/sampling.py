"""Choosing the next token of every row: penalties, greedy, temperature, top-k, top-p, draw.

Each row brings its own settings and its own seeded ``torch.Generator`` (``row.rng``), so a
batch can mix greedy and sampled rows with different temperatures and nuclei, and a row's
draw never depends on which other rows share its batch. torch is imported inside the
functions: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from quotegen.engine.rows import Row


def choose_tokens(
    logits: torch.Tensor,
    rows: Sequence[Row],
    presence: torch.Tensor | None,
    eos: Sequence[int],
) -> torch.Tensor:
    """Pick the next token of every row, each with its own settings and random generator.

    ``presence`` marks the tokens each row has seen (for the repetition penalty, or None);
    ``eos`` are the end-of-text ids, suppressed while a row is below its min_new_tokens.
    """
    import torch

    device = logits.device
    if presence is not None:
        penalty = torch.tensor([r.settings.repetition_penalty for r in rows], device=device)[
            :, None
        ]
        penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
        logits = torch.where(presence, penalized, logits)
    early = [j for j, r in enumerate(rows) if len(r.token_ids) < r.settings.min_new_tokens]
    if eos and early:
        logits[torch.tensor(early, device=device)[:, None], torch.tensor(eos, device=device)] = (
            float("-inf")
        )
    return _by_group(
        rows,
        lambda row: row.settings.greedy,
        lambda ids, _: logits[ids].argmax(dim=-1),
        lambda ids, subset: _sample(logits[ids], subset),
    )


def _sample(logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
    """Sample one token per row: temperature, then min-p, then top-k, then top-p, then a draw.

    Rows with a top-k work on their k best candidates only. Rows without one (seed 2's
    ``top_k=0``) keep the whole vocabulary: their nucleus is found by
    ``nucleus_threshold`` in linear time instead of sorting 50k logits every step.
    """
    import torch

    vocab = logits.shape[-1]
    temps = [r.settings.temperature for r in rows]
    if any(t != 1.0 for t in temps):
        logits = logits / torch.tensor(temps, device=logits.device)[:, None]
    min_ps = [r.settings.min_p for r in rows]
    if any(min_ps):
        # p >= min_p * p_max, in logits: logit >= max logit + log(min_p); log(0) keeps all.
        floor = (
            logits.amax(dim=-1, keepdim=True)
            + torch.tensor(min_ps, device=logits.device).log()[:, None]
        )
        logits = logits.masked_fill(logits < floor, float("-inf"))
    return _by_group(
        rows,
        lambda row: 0 < row.settings.top_k < vocab,
        lambda ids, subset: _sample_top_k(logits[ids], subset),
        lambda ids, subset: _sample_top_p(logits[ids], subset),
    )


def _sample_top_p(logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
    import torch

    probs = torch.softmax(logits, dim=-1)
    top_ps = torch.tensor([r.settings.top_p for r in rows], dtype=torch.float64)
    if bool((top_ps < 1.0).any()):
        outside = probs < nucleus_threshold(probs, top_ps).to(probs.device)[:, None]
        probs = probs.masked_fill_(outside, 0.0)
    return _draw(probs, rows)


def _sample_top_k(logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
    import torch

    device = logits.device
    top_ks = torch.tensor([r.settings.top_k for r in rows], device=device)[:, None]
    top_ps = torch.tensor([r.settings.top_p for r in rows], device=device)[:, None]
    values, candidates = torch.topk(logits, max(r.settings.top_k for r in rows), dim=-1)
    ranks = torch.arange(values.shape[-1], device=device)[None, :]
    probs = torch.softmax(values.masked_fill(ranks >= top_ks, -torch.inf), dim=-1)
    # Nucleus: keep a token while the mass before it is below top_p (the first always stays).
    before = probs.cumsum(dim=-1) - probs
    drop = (before >= top_ps) & (top_ps < 1.0) & (ranks > 0)
    slots = _draw(probs.masked_fill(drop, 0.0), rows)
    return candidates.gather(1, slots[:, None])[:, 0]


def _by_group(
    rows: Sequence[Row],
    test: Callable[[Row], bool],
    if_true: Callable[[Any, list[Row]], torch.Tensor],
    if_false: Callable[[Any, list[Row]], torch.Tensor],
) -> torch.Tensor:
    """Apply ``if_true`` to the rows passing ``test`` and ``if_false`` to the others, each as
    one batch, and put the results back in row order. ``ids`` is ``slice(None)`` (no copy)
    when every row is in the same group."""
    import torch

    flags = [test(row) for row in rows]
    if all(flags):
        return if_true(slice(None), list(rows))
    if not any(flags):
        return if_false(slice(None), list(rows))
    groups = [[j for j, flag in enumerate(flags) if flag is wanted] for wanted in (True, False)]
    picked = [
        apply(ids, [rows[j] for j in ids])
        for ids, apply in zip(groups, (if_true, if_false), strict=True)
    ]
    out = torch.empty(len(rows), dtype=torch.long, device=picked[0].device)
    for ids, values in zip(groups, picked, strict=True):
        out[ids] = values
    return out


def _draw(probs: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
    """One index per row, drawn in proportion to ``probs`` (unnormalised) with the row's RNG.

    Inverse-CDF sampling: one uniform number per row from the row's own seeded generator, so a
    row's draw never depends on which other rows share its batch.
    """
    import torch

    cdf = probs.double().cumsum(dim=-1)
    u = torch.cat(
        [torch.rand(1, generator=row.rng, dtype=torch.float64, device=cdf.device) for row in rows]
    )
    targets = (u * cdf[:, -1])[:, None]
    # cdf[i - 1] <= target < cdf[i], so probs[i] > 0: a zero-probability slot is never drawn.
    picks = torch.searchsorted(cdf, targets, right=True)[:, 0]
    return picks.clamp(max=cdf.shape[-1] - 1).to(probs.device)


def nucleus_threshold(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Per row, the smallest probability inside the top-p nucleus; 0 where top_p >= 1.

    The nucleus is the smallest set of likeliest tokens whose mass reaches top_p, which is
    every token with ``probs >= threshold`` (ties at the edge all stay). Found without
    sorting (a radix select): float32 bit patterns of non-negative numbers sort like the
    numbers, so a mass-weighted histogram of the top 12 bits over the whole vocabulary finds
    the bucket where the cumulative mass (from the top) reaches top_p; histograms of the next
    10 and the last 10 bits of that bucket's few members then give the exact value.
    """
    import torch

    flat = probs.detach().float().contiguous()
    device = flat.device
    rows = flat.shape[0]
    p = top_p.to(device=device, dtype=torch.float64)[:, None]

    def crossing(
        mass: torch.Tensor, need: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # The highest digit d whose members plus everything above them reach `need` is the
        # one where the mass below d stays within total - need.
        cum = mass.cumsum(-1)
        total = cum[:, -1:]
        d = torch.searchsorted(cum, total - need, right=True).clamp(max=mass.shape[1] - 1)
        return d, need - (total - cum.gather(1, d)), total

    def histogram(row_ids: torch.Tensor, digits: torch.Tensor, weights: torch.Tensor) -> Any:
        mass = torch.zeros(rows * 1024, dtype=torch.float64, device=device)
        return mass.index_add_(0, row_ids * 1024 + digits, weights).view(rows, 1024)

    # Level 1, every token: the top 12 bits (the sign bit is 0, so 11 of them vary).
    bits = flat.view(torch.int32)
    high = torch.bitwise_right_shift(bits, 20).long()
    mass = torch.zeros((rows, 2048), dtype=torch.float64, device=device)
    d1, need, total = crossing(mass.scatter_add_(1, high, flat.double()), p)
    # Levels 2 and 3, only the few members of the buckets found so far.
    row_ids, cols = (high == d1).nonzero(as_tuple=True)
    member_bits = bits[row_ids, cols].long()
    member_weights = flat[row_ids, cols].double()
    mid = torch.bitwise_and(torch.bitwise_right_shift(member_bits, 10), 1023)
    d2, need, _ = crossing(histogram(row_ids, mid, member_weights), need)
    last = mid == d2[row_ids, 0]
    low = torch.bitwise_and(member_bits[last], 1023)
    d3, _, _ = crossing(histogram(row_ids[last], low, member_weights[last]), need)

    found = torch.bitwise_left_shift(d1, 20) | torch.bitwise_left_shift(d2, 10) | d3
    threshold = found.int().view(torch.float32)[:, 0]
    # top_p >= 1, or rounding left the total mass just below top_p: keep everything.
    everything = (p >= 1.0) | (total < p)
    return torch.where(everything[:, 0], torch.zeros_like(threshold), threshold)
