"""The inference speed-ups keep the maths: oneDNN linears, nucleus search, sampling,
continuous batching (rows joining a running batch generate what they would alone)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import torch

from quotegen.engine.generation import Engine
from quotegen.engine.rows import Row
from quotegen.engine.sampling import _draw, nucleus_threshold
from quotegen.engine.scheduler import generate_ordered
from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.settings import GenerationSettings
from tests.helpers.fakes import FakeEngine
from tests.helpers.tickets import connected, open_tickets


def _reference_keep(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The textbook nucleus: sort, keep while the mass before a token is below top_p."""
    values, order = probs.sort(descending=True)
    before = values.double().cumsum(0) - values.double()
    keep_sorted = before < top_p
    keep_sorted[0] = True
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[order[keep_sorted]] = True
    return keep


@pytest.mark.parametrize("scale", [0.05, 1.0, 4.0, 12.0])  # flat .. very peaked
@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.99])
def test_nucleus_threshold_matches_sorting(scale: float, top_p: float) -> None:
    generator = torch.Generator().manual_seed(int(scale * 100) + int(top_p * 100))
    logits = torch.randn(3, 50257, generator=generator) * scale
    probs = torch.softmax(logits, dim=-1)
    thresholds = nucleus_threshold(probs, torch.tensor([top_p] * 3, dtype=torch.float64))
    for j in range(3):
        assert torch.equal(probs[j] >= thresholds[j], _reference_keep(probs[j], top_p))


def test_nucleus_threshold_off_at_top_p_one() -> None:
    probs = torch.softmax(torch.randn(2, 100), dim=-1)
    thresholds = nucleus_threshold(probs, torch.tensor([1.0, 0.5], dtype=torch.float64))
    assert thresholds[0] == 0.0
    assert thresholds[1] > 0.0


def test_draw_follows_the_distribution_and_never_picks_zero() -> None:
    probs = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3, 0.0]])
    row = Row(0, 0, "p", GenerationSettings(), 0, [1], 1)
    row.rng = torch.Generator().manual_seed(7)
    counts = torch.zeros(6)
    for _ in range(4000):
        counts[int(_draw(probs, [row])[0])] += 1
    assert counts[[0, 2, 5]].sum() == 0
    assert torch.allclose(counts / 4000, probs[0], atol=0.03)


def test_fast_linears_give_the_same_logits(tiny_model_dir: Path) -> None:
    ref = parse_model_ref(str(tiny_model_dir))
    plain = load_model(ref, place("cpu", inference=False), optimize=False).model
    fast = load_model(ref, place("cpu", "float32")).model
    ids = torch.tensor([[5, 17, 42, 7]])
    with torch.inference_mode():
        assert torch.allclose(plain(ids).logits, fast(ids).logits, atol=1e-5)
    names = {type(m).__name__ for m in fast.modules()}
    assert "Float32Linear" in names
    assert "Conv1D" not in names
    # The output head still shares the input embedding's weight: no second copy.
    embed, head = fast.get_input_embeddings(), fast.get_output_embeddings()
    assert embed.weight.data_ptr() == head.weight.data_ptr()


def _solo(engine: Engine, prompt: str, settings: GenerationSettings, index: int) -> list[int]:
    (row,) = engine.prepare([prompt], settings, start_index=index)
    engine.run([row])
    return row.token_ids


@pytest.mark.parametrize("greedy", [True, False])
def test_rows_joining_a_running_batch_generate_what_they_would_alone(
    engine: Engine, greedy: bool
) -> None:
    settings = GenerationSettings(
        seed=5, max_new_tokens=12, min_new_tokens=12, stop=[], do_sample=not greedy
    )
    prompts = ["life is", "a much longer prompt about friendship and light", "love"]
    alone = [_solo(engine, p, settings, i) for i, p in enumerate(prompts)]

    rows = engine.prepare(prompts, settings)
    first, later = rows[:1], rows[1:]
    asked: list[int] = []

    def admit(running: int) -> list[Row]:
        asked.append(running)
        # Rows join at the 3rd and 6th steps, while the first is mid-way.
        if len(asked) in (3, 6) and later:
            return [later.pop(0)]
        return []

    finished: list[Row] = []
    for row in rows:
        row.on_finish = finished.append
    engine.run(first, admit=admit)
    assert [row.token_ids for row in rows] == alone
    assert finished == [rows[0], rows[1], rows[2]]  # each delivered when it ends
    assert asked[2:6] == [1, 2, 2, 2]


def test_penalty_rows_joining_keep_their_history(engine: Engine) -> None:
    settings = GenerationSettings(
        seed=9, max_new_tokens=10, min_new_tokens=10, stop=[], repetition_penalty=1.5
    )
    alone = [_solo(engine, p, settings, i) for i, p in enumerate(["love is", "time"])]
    rows = engine.prepare(["love is", "time"], settings)
    pending = [rows[1]]
    engine.run(rows[:1], admit=lambda n: [pending.pop()] if pending and n == 1 else [])
    assert [row.token_ids for row in rows] == alone


def test_engine_delivers_short_requests_while_long_ones_run() -> None:
    fake = FakeEngine(delay=0.005, context_length=4096)

    async def scenario() -> tuple[float, float]:
        tickets = open_tickets(fake, max_batch_size=4)
        try:
            long = tickets.submit(["long"], GenerationSettings(max_new_tokens=400, stop=[]))
            await asyncio.sleep(0.05)  # the long request is running alone by now
            started = time.monotonic()
            short = tickets.submit(["short"], GenerationSettings(max_new_tokens=5, stop=[]))
            await tickets.result(short, connected)
            short_wait = time.monotonic() - started
            await tickets.result(long, connected)
            long_wait = time.monotonic() - started
        finally:
            tickets.scheduler.stop()
        return short_wait, long_wait

    short_wait, long_wait = asyncio.run(scenario())
    # Joined the running batch at once and came back long before the long request ended.
    assert short_wait < long_wait / 3
    assert len(fake.seen) == 1  # one decode loop served both


def test_generate_ordered_matches_generate_in_order(engine: Engine) -> None:
    settings = GenerationSettings(seed=21, max_new_tokens=6, n=2)
    prompts = [f"prompt {i} is" for i in range(7)]
    expected = engine.generate(prompts, settings, batch_size=4)
    got = list(generate_ordered(engine, iter(prompts), settings, batch_size=3))
    assert [(r.index, r.sample) for r in got] == [(r.index, r.sample) for r in expected]
    assert [r.completion for r in got] == [r.completion for r in expected]


def test_generate_ordered_does_not_wait_for_a_full_batch(engine: Engine) -> None:
    """A slow producer (a pipe fed by hand) gets each answer before sending the next line."""
    import threading

    settings = GenerationSettings(seed=2, max_new_tokens=4)
    answered = threading.Event()

    def slow_prompts():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield f"line {i}"
            # The next line comes only once this one has been answered (or after 30 s).
            assert answered.wait(30), "line was not answered before the next one arrived"
            answered.clear()

    results = []
    for result in generate_ordered(engine, slow_prompts(), settings, batch_size=32):
        results.append(result)
        answered.set()
    assert [r.index for r in results] == [0, 1, 2]


def test_generate_ordered_reports_a_bad_prompt_after_the_earlier_results(
    engine: Engine,
) -> None:
    from quotegen.errors import PromptTooLongError

    settings = GenerationSettings(seed=2, max_new_tokens=4)
    prompts = ["fine", "also fine", "word " * 5000, "never reached"]
    seen: list[int] = []

    def consume() -> None:
        for result in generate_ordered(engine, iter(prompts), settings, batch_size=2):
            seen.append(result.index)

    with pytest.raises(PromptTooLongError):
        consume()
    assert seen == [0, 1]
