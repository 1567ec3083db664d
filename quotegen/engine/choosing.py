"""Choosing the quotes to return from a prompt's candidates: no repeats, the best first.

A prompt asked for ``n`` quotes with ``best_of`` gets ``candidates(settings)`` rows: ``n x
best_of``, plus a few spare ones when ``n > 1`` so that a repeat can be replaced. ``choose``
drops repeats (the same text, or the same first 30 letters) and keeps the ``n`` best by their
score (``quotegen.engine.scorer``); candidates without a score keep their order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from quotegen.config import MAX_SEED
from quotegen.schemas import GenerationResult
from quotegen.settings import GenerationSettings

#: Letters two quotes share at the start to count as one (a near repeat).
NEAR_LETTERS = 30


def candidates(settings: GenerationSettings) -> int:
    """Rows a prompt gets: ``n x best_of``, and with ``n > 1`` half as many again (at least
    two) to replace repeats."""
    spare = max(2, math.ceil(settings.n / 2)) if settings.n > 1 else 0
    return settings.n * settings.best_of + spare


def candidate_seed(base: int, index: int, sample: int, n: int, width: int) -> int:
    """The seed of candidate ``sample`` of prompt ``index``: the first ``n`` keep the seeds a
    plain ``n`` gives (``base + index * n + sample``); the others take seeds half the seed
    range away, where no first ``n`` of another prompt falls."""
    if sample < n:
        return (base + index * n + sample) % MAX_SEED
    return (base + MAX_SEED // 2 + index * width + sample) % MAX_SEED


def near_key(text: str) -> str:
    """What two quotes share when one repeats the other: their first 30 letters (a shorter
    quote: all of it, case and spacing aside)."""
    letters = re.sub(r"[^a-z]", "", text.lower())
    if len(letters) >= NEAR_LETTERS:
        return letters[:NEAR_LETTERS]
    return " ".join(text.lower().split())


def choose(
    results: Sequence[GenerationResult], n: int, *, rank: bool = True
) -> list[GenerationResult]:
    """The ``n`` best distinct quotes of one prompt's candidates, renumbered 0..n-1; without
    ``rank`` (``best_of`` 1) the first ``n`` distinct ones, in their order.

    A repeat is replaced by the next best distinct candidate; only when the candidates hold
    fewer than ``n`` distinct quotes (greedy decoding, a model that knows one answer) do the
    best repeats fill the rest, so ``n`` asked is ``n`` returned. An unfinished candidate (cut
    at the length limit) ranks after every finished one."""
    if len(results) <= 1:
        return list(results)
    ranked = list(enumerate(results))
    if rank:
        ranked.sort(
            key=lambda item: (
                item[1].finish_reason == "length",
                -(item[1].score if item[1].score is not None else 0.0),
                item[0],
            )
        )
    kept: list[GenerationResult] = []
    repeats: list[GenerationResult] = []
    seen: set[str] = set()
    for _, result in ranked:
        key = near_key(result.completion)
        if key in seen:
            repeats.append(result)
            continue
        seen.add(key)
        kept.append(result)
    kept = (kept + repeats)[:n]
    if not rank:
        kept.sort(key=lambda r: r.sample)
    return [r.model_copy(update={"sample": i}) for i, r in enumerate(kept)]
