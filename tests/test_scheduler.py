"""The scheduler and its asyncio door: results to the right request, cancellation frees the
batch, a full queue refuses, a failing batch fails its requests and the scheduler goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from quotegen.engine.rows import Row
from quotegen.engine.scheduler import Scheduler, generate_ordered
from quotegen.errors import OverloadedError, QuotegenError
from quotegen.settings import GenerationSettings
from tests.helpers.fakes import FakeEngine
from tests.helpers.tickets import connected, open_tickets


def test_each_request_gets_its_own_result() -> None:
    async def scenario() -> None:
        tickets = open_tickets(FakeEngine(), max_wait_ms=50)
        try:
            submitted = [
                tickets.submit([f"p{i}"], GenerationSettings(max_new_tokens=i + 1, stop=[]))
                for i in range(6)
            ]
            results = [await tickets.result(t, connected) for t in submitted]
        finally:
            tickets.scheduler.stop()
        for i, (result,) in enumerate(results):
            assert result.prompt == f"p{i}"
            assert result.completion_tokens == i + 1

    asyncio.run(scenario())


def test_disconnected_client_cancels_its_rows() -> None:
    engine = FakeEngine(delay=0.01, context_length=4096)

    async def scenario() -> None:
        tickets = open_tickets(engine)
        try:
            gone = tickets.submit(["x"], GenerationSettings(max_new_tokens=1000, stop=[]))
            stays = tickets.submit(["y"], GenerationSettings(max_new_tokens=30, stop=[]))
            calls = {"n": 0}

            async def disconnect_soon() -> bool:
                calls["n"] += 1
                return calls["n"] > 1

            with pytest.raises(asyncio.CancelledError):
                await tickets.result(gone, disconnect_soon)
            (kept,) = await tickets.result(stays, connected)
            assert kept.completion_tokens == 30
        finally:
            tickets.scheduler.stop()
        row = gone.rows[0]
        assert row.finish_reason == "cancelled"
        assert len(row.token_ids) < 1000

    asyncio.run(scenario())


def test_full_queue_refuses_immediately() -> None:
    async def scenario() -> None:
        # Not started: nothing drains the queue.
        tickets = open_tickets(FakeEngine(), max_queue=2, start=False)
        tickets.submit(["a", "b"], GenerationSettings())
        with pytest.raises(OverloadedError, match="limit 2"):
            tickets.submit(["c"], GenerationSettings())

    asyncio.run(scenario())


def test_a_failing_batch_fails_its_requests_and_the_scheduler_goes_on() -> None:
    engine = FakeEngine(delay=0.01, context_length=4096)
    real_steps = engine.steps
    calls = {"n": 0}

    def failing_steps(rows, admit=None) -> Iterator[None]:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 1:
            yield from real_steps(rows, admit)
            return
        # The first batch runs until a second request has joined it, then the model "crashes".
        joined: list[Row] = []

        def watching_admit(running: int) -> list[Row]:
            new = admit(running)
            joined.extend(new)
            return new

        steps = real_steps(rows, watching_admit)
        while not joined:
            yield next(steps)
        steps.close()  # as a real crash inside the loop would, it lets go of the model
        raise RuntimeError("out of memory")

    engine.steps = failing_steps  # type: ignore[method-assign]

    async def scenario() -> None:
        tickets = open_tickets(engine)
        try:
            first = tickets.submit(["a"], GenerationSettings(max_new_tokens=100, stop=[]))
            await asyncio.sleep(0.02)
            joined = tickets.submit(["b"], GenerationSettings(max_new_tokens=100, stop=[]))
            for ticket in (first, joined):
                with pytest.raises(QuotegenError, match="Generation failed: RuntimeError"):
                    await tickets.result(ticket, connected)
            after = tickets.submit(["c"], GenerationSettings(max_new_tokens=3, stop=[]))
            (result,) = await tickets.result(after, connected)
            assert result.completion_tokens == 3
            assert not tickets.scheduler._running  # the failed batch left nothing behind
        finally:
            tickets.scheduler.stop()

    asyncio.run(scenario())


def test_rows_left_queued_at_shutdown_fail_their_request() -> None:
    async def scenario() -> None:
        tickets = open_tickets(FakeEngine(), start=False)
        ticket = tickets.submit(["a"], GenerationSettings())
        await asyncio.to_thread(tickets.scheduler.stop, 0.0)
        with pytest.raises(OverloadedError, match="shutting down"):
            await tickets.result(ticket, connected)

    asyncio.run(scenario())


def test_ordered_generation_with_a_blocking_queue() -> None:
    """More prompts than the queue holds: the reader waits for room instead of failing."""
    engine = FakeEngine()
    settings = GenerationSettings(max_new_tokens=2, stop=[], n=2, seed=5)
    prompts = [f"p{i}" for i in range(700)]
    results = list(generate_ordered(engine, iter(prompts), settings, batch_size=4))
    assert [(r.index, r.sample) for r in results] == [(i, k) for i in range(700) for k in (0, 1)]
    assert results[0].seed == 5
    assert results[-1].seed == 5 + 699 * 2 + 1


def test_scheduler_rejects_a_zero_batch_size() -> None:
    with pytest.raises(QuotegenError, match="at least 1"):
        Scheduler(FakeEngine(), max_batch_size=0)
