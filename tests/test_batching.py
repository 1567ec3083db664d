"""The batching engine: results to the right request, cancellation frees the batch."""

from __future__ import annotations

import asyncio

import pytest

from quotegen.batching import BatchEngine, EngineLimits
from quotegen.errors import OverloadedError
from quotegen.schemas import GenerationSettings
from tests.conftest import FakeGenerator


def test_each_request_gets_its_own_result() -> None:
    async def scenario() -> None:
        engine = BatchEngine(FakeGenerator(), EngineLimits(max_wait_ms=50))
        engine.start()
        try:
            tickets = [
                engine.submit([f"p{i}"], GenerationSettings(max_new_tokens=i + 1, stop=[]))
                for i in range(6)
            ]
            results = [await engine.result(t, _connected) for t in tickets]
        finally:
            engine.stop()
        for i, (result,) in enumerate(results):
            assert result.prompt == f"p{i}"
            assert result.completion_tokens == i + 1

    asyncio.run(scenario())


async def _connected() -> bool:
    return False


def test_disconnected_client_cancels_its_rows() -> None:
    generator = FakeGenerator(delay=0.01, context_length=4096)

    async def scenario() -> None:
        engine = BatchEngine(generator, EngineLimits(max_wait_ms=0))
        engine.start()
        try:
            gone = engine.submit(["x"], GenerationSettings(max_new_tokens=1000, stop=[]))
            stays = engine.submit(["y"], GenerationSettings(max_new_tokens=30, stop=[]))
            calls = {"n": 0}

            async def disconnect_soon() -> bool:
                calls["n"] += 1
                return calls["n"] > 1

            with pytest.raises(asyncio.CancelledError):
                await engine.result(gone, disconnect_soon)
            (kept,) = await engine.result(stays, _connected)
            assert kept.completion_tokens == 30
        finally:
            engine.stop()
        row = gone.rows[0]
        assert row.finish_reason == "cancelled"
        assert len(row.token_ids) < 1000

    asyncio.run(scenario())


def test_full_queue_refuses_immediately() -> None:
    async def scenario() -> None:
        engine = BatchEngine(FakeGenerator(), EngineLimits(max_queue=2))
        # Not started: nothing drains the queue.
        engine.submit(["a", "b"], GenerationSettings())
        with pytest.raises(OverloadedError, match="limit 2"):
            engine.submit(["c"], GenerationSettings())

    asyncio.run(scenario())


def test_a_failing_batch_fails_its_requests_and_the_engine_goes_on() -> None:
    from quotegen.errors import QuotegenError

    generator = FakeGenerator(delay=0.01, context_length=4096)
    real_loop = generator._decode_loop
    calls = {"n": 0}

    def failing_loop(rows, admit=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 1:
            yield from real_loop(rows, admit)
            return
        # The first batch runs until a second request has joined it, then the model "crashes".
        joined: list[object] = []

        def watching_admit(running: int):  # type: ignore[no-untyped-def]
            new = admit(running)
            joined.extend(new)
            return new

        steps = real_loop(rows, watching_admit)
        while not joined:
            yield next(steps)
        raise RuntimeError("out of memory")

    generator._decode_loop = failing_loop

    async def scenario() -> None:
        engine = BatchEngine(generator, EngineLimits(max_wait_ms=0))
        engine.start()
        try:
            first = engine.submit(["a"], GenerationSettings(max_new_tokens=100, stop=[]))
            await asyncio.sleep(0.02)
            joined = engine.submit(["b"], GenerationSettings(max_new_tokens=100, stop=[]))
            for ticket in (first, joined):
                with pytest.raises(QuotegenError, match="Generation failed: RuntimeError"):
                    await engine.result(ticket, _connected)
            after = engine.submit(["c"], GenerationSettings(max_new_tokens=3, stop=[]))
            (result,) = await engine.result(after, _connected)
            assert result.completion_tokens == 3
            assert engine.busy_rows == 0
        finally:
            engine.stop()

    asyncio.run(scenario())
