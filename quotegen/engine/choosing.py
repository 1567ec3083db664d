"""Choosing the quotes to return from a prompt's candidates: no repeats, the best first.

A prompt asked for ``n`` quotes with ``best_of`` gets ``candidates(settings)`` rows: ``n x
best_of``, plus a few spare ones when ``n > 1`` so that a repeat can be replaced. ``choose``
drops repeats (the same text, or the same first 30 letters) and keeps the ``n`` best by their
score (``quotegen.engine.scorer``); candidates without a score keep their order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from quotegen.config import MAX_SEED
from quotegen.engine.rows import Row
from quotegen.engine.topics import asked_topic, mentions
from quotegen.schemas import GenerationResult
from quotegen.settings import GenerationSettings

#: Letters two quotes share at the start to count as one (a near repeat).
NEAR_LETTERS = 30
#: Candidates one prompt may draw in all, redraws included.
MAX_REDRAWS = 1024
#: Where the spare candidates' and the redraws' seeds start, from the run's seed.
SPARE_OFFSET = 1 << 31
REDRAW_OFFSET = 3 << 30


def distinct(results: Sequence[GenerationResult]) -> int:
    """How many of ``results`` differ (no one a repeat of another kept before it)."""
    kept: list[str] = []
    for result in results:
        if not any(repeats(result.completion, other) for other in kept):
            kept.append(result.completion)
    return len(kept)


def candidates(settings: GenerationSettings) -> int:
    """Rows a prompt gets: ``n x best_of``, and with ``n > 1`` half as many again (at least
    two) to replace repeats."""
    spare = max(2, math.ceil(settings.n / 2)) if settings.n > 1 else 0
    return settings.n * settings.best_of + spare


def candidate_seed(base: int, index: int, sample: int, n: int, width: int) -> int:
    """The seed of candidate ``sample`` of prompt ``index``: the first ``n`` keep the seeds a
    plain ``n`` gives (``base + index * n + sample``); the other candidates take seeds 2**31
    away, and candidates drawn later to replace repeats (``sample >= width``) 3 * 2**30 away,
    where no other prompt's fall (for fewer than a million prompts). The offsets lie within
    32 bits: torch's CPU generator keeps only a seed's low 32 bits."""
    if sample < n:
        return (base + index * n + sample) % MAX_SEED
    if sample < width:
        return (base + SPARE_OFFSET + index * width + sample) % MAX_SEED
    return (base + REDRAW_OFFSET + index * MAX_REDRAWS + sample) % MAX_SEED


def redraw(row: Row, sample: int) -> Row:
    """A fresh candidate for ``row``'s prompt, to replace a repeat: the same prompt and
    settings, candidate number ``sample``'s seed."""
    settings = row.settings
    width = candidates(settings)
    seed = candidate_seed(settings.seed or 0, row.index, sample, settings.n, width)
    return Row(
        index=row.index,
        sample=sample,
        prompt=row.prompt,
        settings=settings,
        seed=seed,
        prompt_ids=row.prompt_ids,
        max_new_tokens=row.max_new_tokens,
        first_token=row.first_token,
        shown_prompt=row.shown_prompt,
        is_cancelled=row.is_cancelled,
    )


def with_redraws(
    rows: Sequence[Row],
    chosen: Callable[[Sequence[Row]], list[GenerationResult]],
    run: Callable[[list[Row]], object],
) -> list[GenerationResult]:
    """``chosen(rows)``; when the candidates hold fewer than ``n`` distinct quotes, or fewer
    than ``n`` that name the topic asked for (``topics.asked_topic``), and the rows sample, up
    to two more rounds of candidates (``redraw``) are ``run`` on the calling thread."""
    results, rows = chosen(rows), list(rows)
    first = rows[0].settings
    topic = asked_topic(rows[0].prompt)
    for _ in range(2):
        missing = first.n - distinct(results)
        if topic is not None:
            missing = max(missing, first.n - sum(mentions(r.text, topic) for r in results))
        cancelled = rows[0].is_cancelled is not None and rows[0].is_cancelled()
        if missing <= 0 or cancelled or not first.do_sample or first.temperature == 0:
            break
        extra = [redraw(rows[0], len(rows) + k) for k in range(2 * missing * first.best_of)]
        run(extra)
        rows += extra
        results = chosen(rows)
    return results


def near_key(text: str) -> str:
    """What two quotes share when one repeats the other: their first 30 letters (a shorter
    quote: all of it, case and spacing aside)."""
    letters = re.sub(r"[^a-z]", "", text.lower())
    if len(letters) >= NEAR_LETTERS:
        return letters[:NEAR_LETTERS]
    return " ".join(text.lower().split())


def repeats(a: str, b: str) -> bool:
    """Whether one quote repeats the other: the same first 30 letters, or a quote of at least
    15 letters that the other begins with ("Money is the root of all evil." and "Money is
    the root of all evil, but ...")."""
    if near_key(a) == near_key(b):
        return True
    short, long = sorted((re.sub(r"[^a-z]", "", t.lower()) for t in (a, b)), key=len)
    return len(short) >= NEAR_LETTERS // 2 and long.startswith(short)


def choose(
    results: Sequence[GenerationResult], n: int, *, rank: bool = True
) -> list[GenerationResult]:
    """The ``n`` best distinct quotes of one prompt's candidates, renumbered 0..n-1; without
    ``rank`` (``best_of`` 1) the first ``n`` distinct ones, in their order.

    A repeat is replaced by the next best distinct candidate; only when the candidates hold
    fewer than ``n`` distinct quotes (greedy decoding, a model that knows one answer) do the
    best repeats fill the rest, so ``n`` asked is ``n`` returned. An unfinished candidate (cut
    at the length limit) ranks after every finished one, and one that adds nothing to its
    prompt after those."""
    if len(results) <= 1:
        return list(results)
    ranked = list(enumerate(results))
    if rank:
        ranked.sort(
            key=lambda item: (
                not item[1].completion.strip(),
                item[1].finish_reason == "length",
                -(item[1].score if item[1].score is not None else 0.0),
                item[0],
            )
        )
    kept: list[GenerationResult] = []
    again: list[GenerationResult] = []
    for _, result in ranked:
        if any(repeats(result.completion, other.completion) for other in kept):
            again.append(result)
            continue
        kept.append(result)
    kept = (kept + again)[:n]
    if not rank:
        kept.sort(key=lambda r: r.sample)
    return [r.model_copy(update={"sample": i}) for i, r in enumerate(kept)]
