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
