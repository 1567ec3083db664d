"""Dynamic batching for the server: one engine behind every route.

Requests become rows (one prompt, one sample). A single worker thread takes rows from a bounded
queue, waits a few milliseconds for company, and runs them through the shared decode loop off
the event loop. Batching is continuous: while a batch runs, queued rows join it at the next
token step (up to ``max_batch_size``), and each row's result is delivered the moment it
finishes. Every row carries its own settings and seed, so any requests can share a batch;
results go back to the asyncio side through futures, streamed text through queues. A full
queue is refused at once (``OverloadedError``); a cancelled ticket (timeout, or a client that
went away) drops its rows from the queue or from the running batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from quotegen.config import DEFAULT_BATCH_SIZE
from quotegen.errors import OverloadedError, QuotegenError, RequestTimeoutError
from quotegen.generation import Generator, Row
from quotegen.schemas import GenerationResult, GenerationSettings


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """Hand work to the event loop; a loop already closed (shutdown) has nobody to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


@dataclass
class EngineLimits:
    max_batch_size: int = DEFAULT_BATCH_SIZE
    max_wait_ms: float = 10.0
    max_queue: int = 256
    request_timeout_s: float = 60.0


@dataclass
class Ticket:
    """One request's rows and the ways its results come back."""

    rows: list[Row]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[list[GenerationResult]]
    stream: asyncio.Queue[tuple[int, str] | None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    remaining: int = 0
    results: dict[int, GenerationResult] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)

    def cancel(self) -> None:
        self.cancelled.set()


class BatchEngine:
    """Queue + worker thread feeding ``Generator`` batches."""

    def __init__(
        self,
        generator: Generator,
        limits: EngineLimits | None = None,
        *,
        on_batch: Callable[[int], None] | None = None,
        on_tokens: Callable[[int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
        on_running: Callable[[int], None] | None = None,
    ) -> None:
        self.generator = generator
        self.limits = limits or EngineLimits()
        self._on_batch = on_batch
        self._on_tokens = on_tokens
        self._on_queue = on_queue
        self._on_running = on_running
        self._queue: deque[tuple[Ticket, Row]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._running: dict[int, tuple[Ticket, Row]] = {}
        self.busy_rows = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="quotegen-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued and running (within ``timeout``), then stop the worker."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._queue or self.busy_rows) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            self._stopping = True
            for ticket, _ in self._queue:
                ticket.cancel()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    # -- the asyncio side ---------------------------------------------------------------------

    def submit(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings,
        *,
        stream: bool = False,
    ) -> Ticket:
        """Queue a request (call from the event loop); refuses at once when the queue is full."""
        rows = self.generator.prepare(prompts, settings, strict_context=True)
        loop = asyncio.get_running_loop()
        ticket = Ticket(
            rows=rows,
            loop=loop,
            done=loop.create_future(),
            stream=asyncio.Queue() if stream else None,
            remaining=len(rows),
            positions={id(row): i for i, row in enumerate(rows)},
        )
        for position, row in enumerate(rows):
            row.is_cancelled = ticket.cancelled.is_set
            row.on_finish = self._row_finished
            if ticket.stream is not None:
                row.on_text = self._streamer(ticket, position)
        with self._cond:
            if self._stopping:
                raise OverloadedError("The server is shutting down; retry on another replica.")
            if len(self._queue) + len(rows) > self.limits.max_queue:
                raise OverloadedError(
                    f"The server is busy: {len(self._queue)} rows are queued (limit "
                    f"{self.limits.max_queue}). Retry shortly."
                )
            self._queue.extend((ticket, row) for row in rows)
            self._report_queue()
            self._cond.notify()
        return ticket

    async def result(
        self, ticket: Ticket, is_disconnected: Callable[[], Any]
    ) -> list[GenerationResult]:
        """Wait for a ticket, cancelling it on timeout or when the client has gone away."""
        deadline = time.monotonic() + self.limits.request_timeout_s
        try:
            while True:
                left = self._time_left(deadline)
                done, _ = await asyncio.wait({ticket.done}, timeout=min(0.25, left))
                if done:
                    return ticket.done.result()
                if await is_disconnected():
                    raise asyncio.CancelledError
        finally:
            if not ticket.done.done():
                ticket.cancel()

    async def stream(self, ticket: Ticket) -> AsyncIterator[tuple[int, str]]:
        """Yield ``(row position, text)`` pieces as they are generated, until every row ends."""
        assert ticket.stream is not None
        deadline = time.monotonic() + self.limits.request_timeout_s
        try:
            while True:
                left = self._time_left(deadline)
                try:
                    item = await asyncio.wait_for(ticket.stream.get(), timeout=left)
                except asyncio.TimeoutError:
                    continue
                if item is None:
                    return
                yield item
        finally:
            if not ticket.done.done():
                ticket.cancel()

    def _time_left(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RequestTimeoutError(
                f"The request took longer than {self.limits.request_timeout_s:g} s."
            )
        return left

    def _streamer(self, ticket: Ticket, position: int) -> Callable[[str], None]:
        queue = ticket.stream
        assert queue is not None

        def emit(text: str) -> None:
            _call_soon(ticket.loop, queue.put_nowait, (position, text))

        return emit

    # -- the worker thread --------------------------------------------------------------------

    def _take_batch(self) -> list[Row] | None:
        """Block until there is work, give company a few milliseconds, take a first batch."""
        limits = self.limits
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping and not self._queue:
                return None
            # A short wait lets concurrent requests start together.
            deadline = time.monotonic() + limits.max_wait_ms / 1000
            while len(self._queue) < limits.max_batch_size and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._pop_rows(limits.max_batch_size)

    def _admit(self, running: int) -> list[Row]:
        """Called by the decode loop before each step: queued rows that fit in the batch."""
        if not self._queue:  # unlocked peek: the common case costs nothing
            return []
        with self._cond:
            if self._stopping:
                return []
            rows = self._pop_rows(self.limits.max_batch_size - running)
        if rows and self._on_batch is not None:
            self._on_batch(len(rows))
        return rows

    def _pop_rows(self, room: int) -> list[Row]:
        """Move up to ``room`` live rows from the queue to the running set (lock held)."""
        rows: list[Row] = []
        while self._queue and len(rows) < room:
            ticket, row = self._queue.popleft()
            if ticket.cancelled.is_set():
                self._finish_row(ticket, row, cancelled=True)
                continue
            self._running[id(row)] = (ticket, row)
            rows.append(row)
        self._set_busy()
        self._report_queue()
        return rows

    def _row_finished(self, row: Row) -> None:
        """The decode loop finished a row: deliver it now, not when the whole batch ends."""
        with self._cond:
            ticket, _ = self._running.pop(id(row))
            self._set_busy()
            self._cond.notify_all()
        self._finish_row(ticket, row)
        if self._on_tokens is not None:
            self._on_tokens(len(row.token_ids))

    def _work(self) -> None:
        while True:
            rows = self._take_batch()
            if rows is None:
                return
            if not rows:
                continue
            if self._on_batch is not None:
                self._on_batch(len(rows))
            try:
                self.generator.run(rows, admit=self._admit)
            except BaseException as exc:  # delivered to every request still running
                with self._cond:
                    failed = list(self._running.values())
                    self._running.clear()
                for ticket, row in failed:
                    self._finish_row(ticket, row, error=exc)
            with self._cond:
                self._set_busy()
                self._cond.notify_all()

    def _finish_row(
        self,
        ticket: Ticket,
        row: Row,
        *,
        cancelled: bool = False,
        error: BaseException | None = None,
    ) -> None:
        if cancelled and row.finish_reason is None:
            row.finish_reason = "cancelled"
        result = self.generator.result(row)
        _call_soon(ticket.loop, self._deliver, ticket, row, result, error)

    @staticmethod
    def _deliver(
        ticket: Ticket, row: Row, result: GenerationResult, error: BaseException | None
    ) -> None:
        """Runs on the event loop: collect a row's result, complete the ticket on the last."""
        if ticket.done.done():
            return
        if error is not None:
            if not isinstance(error, QuotegenError):
                error = QuotegenError(f"Generation failed: {type(error).__name__}: {error}")
            ticket.done.set_exception(error)
            if ticket.stream is not None:
                ticket.stream.put_nowait(None)
            return
        ticket.results[ticket.positions[id(row)]] = result
        ticket.remaining -= 1
        if ticket.remaining == 0:
            ticket.done.set_result([ticket.results[i] for i in range(len(ticket.rows))])
            if ticket.stream is not None:
                ticket.stream.put_nowait(None)

    def _set_busy(self) -> None:
        self.busy_rows = len(self._running)
        if self._on_running is not None:
            self._on_running(self.busy_rows)

    def _report_queue(self) -> None:
        if self._on_queue is not None:
            self._on_queue(len(self._queue))
