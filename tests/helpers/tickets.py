"""The server's request door over a real scheduler and a fake engine, for unit tests."""

from __future__ import annotations

from quotegen.engine.scheduler import Scheduler
from quotegen.server.tickets import Tickets
from tests.helpers.fakes import FakeEngine


def open_tickets(
    engine: FakeEngine,
    *,
    max_wait_ms: float = 0.0,
    max_batch_size: int = 32,
    max_queue: int = 256,
    start: bool = True,
) -> Tickets:
    """The server's request door over a scheduler (started on its worker thread)."""
    scheduler = Scheduler(
        engine, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_queue=max_queue
    )
    if start:
        scheduler.start()
    return Tickets(engine, scheduler, request_timeout_s=60.0)


async def connected() -> bool:
    return False
