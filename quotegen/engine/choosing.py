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

from quotegen.schemas import GenerationResult
from quotegen.settings import GenerationSettings

#: Letters two quotes share at the start to count as one (a near repeat).
NEAR_LETTERS = 30


def candidates(settings: GenerationSettings) -> int:
    """Rows a prompt gets: ``n x best_of``, and with ``n > 1`` half as many again (at least
    two) to replace repeats."""
    spare = max(2, math.ceil(settings.n / 2)) if settings.n > 1 else 0
    return settings.n * settings.best_of + spare


def near_key(text: str) -> str:
    """What two quotes share when one repeats the other: their first 30 letters."""
    return re.sub(r"[^a-z]", "", text.lower())[:NEAR_LETTERS]


def choose(results: Sequence[GenerationResult], n: int) -> list[GenerationResult]:
    """The ``n`` best distinct quotes of one prompt's candidates, renumbered 0..n-1.

    A repeat is replaced by the next best distinct candidate; only when the candidates hold
    fewer than ``n`` distinct quotes (greedy decoding, a model that knows one answer) do the
    best repeats fill the rest, so ``n`` asked is ``n`` returned. An unfinished candidate (cut
    at the length limit) ranks after every finished one."""
    if len(results) <= 1:
        return list(results)
    ranked = sorted(
        enumerate(results),
        key=lambda item: (
            item[1].finish_reason == "length",
            -(item[1].score if item[1].score is not None else 0.0),
            item[0],
        ),
    )
    kept: list[GenerationResult] = []
    repeats: list[GenerationResult] = []
    seen: set[str] = set()
    for _, result in ranked:
        key = near_key(result.completion or result.text) or result.text
        if key in seen:
            repeats.append(result)
            continue
        seen.add(key)
        kept.append(result)
    kept = (kept + repeats)[:n]
    kept.sort(key=lambda r: r.sample)
    return [r.model_copy(update={"sample": i}) for i, r in enumerate(kept)]
