"""Requests as tickets: the asyncio side of the shared scheduler.

A request's rows go to the ``Scheduler`` (which runs on a worker thread); their results come
back to the event loop through a future, and streamed text through a queue. A ticket that
times out, or whose client went away, is cancelled: its rows leave the queue or the running
batch at the next token step.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from quotegen.engine.choosing import choose
from quotegen.engine.generation import TextEngine
from quotegen.engine.rows import Row
from quotegen.engine.scheduler import Scheduler
from quotegen.errors import OverloadedError, RequestTimeoutError, as_user_error
from quotegen.schemas import GenerationResult
from quotegen.settings import GenerationSettings


def chosen(results: Iterable[GenerationResult]) -> list[GenerationResult]:
    """Each prompt's quotes from its scored candidates (``quotegen.engine.choosing``)."""
    by_prompt: dict[int, list[GenerationResult]] = {}
    for result in results:
        by_prompt.setdefault(result.index, []).append(result)
    return [
        r
        for group in by_prompt.values()
        for r in choose(group, group[0].settings.n, rank=group[0].settings.best_of > 1)
    ]


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """Hand work to the event loop; a loop already closed (shutdown) has nobody to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


@dataclass
class Ticket:
    """One request's rows and the ways its results come back."""

    rows: list[Row]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[list[GenerationResult]]
    stream: asyncio.Queue[tuple[int, str] | None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    results: dict[int, GenerationResult] = field(default_factory=dict)

    def cancel(self) -> None:
        self.cancelled.set()


class Tickets:
    """Submit requests to a scheduler from the event loop and await or stream their rows."""

    def __init__(
        self,
        engine: TextEngine,
        scheduler: Scheduler,
        *,
        request_timeout_s: float,
        on_tokens: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.request_timeout_s = request_timeout_s
        self._on_tokens = on_tokens

    def submit(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings,
        *,
        stream: bool = False,
        start_index: int = 0,
    ) -> Ticket:
        """Queue a request (call from the event loop); refuses at once when the queue is full."""
        if stream:  # pieces go out as they come: no candidates to choose from
            settings = settings.model_copy(update={"best_of": 1})
        rows = self.engine.prepare(prompts, settings, start_index=start_index, strict_context=True)
        if stream:
            rows = [row for row in rows if row.sample < settings.n]
        loop = asyncio.get_running_loop()
        ticket = Ticket(
            rows=rows,
            loop=loop,
            done=loop.create_future(),
            stream=asyncio.Queue() if stream else None,
        )
        for position, row in enumerate(rows):
            row.is_cancelled = ticket.cancelled.is_set
            row.on_finish = self._finisher(ticket, position)
            if ticket.stream is not None:
                row.on_text = self._streamer(ticket, position)
        self.scheduler.submit(rows)
        return ticket

    async def result(
        self, ticket: Ticket, is_disconnected: Callable[[], Awaitable[bool]]
    ) -> list[GenerationResult]:
        """Wait for a ticket, cancelling it on timeout or when the client has gone away."""
        deadline = time.monotonic() + self.request_timeout_s
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
        deadline = time.monotonic() + self.request_timeout_s
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
            raise RequestTimeoutError(f"The request took longer than {self.request_timeout_s:g} s.")
        return left

    def _streamer(self, ticket: Ticket, position: int) -> Callable[[str], None]:
        queue = ticket.stream
        assert queue is not None

        def emit(text: str) -> None:
            _call_soon(ticket.loop, queue.put_nowait, (position, text))

        return emit

    def _finisher(self, ticket: Ticket, position: int) -> Callable[[Row], None]:
        """Runs on the worker thread when a row is done: its result goes to the event loop."""

        def finished(row: Row) -> None:
            error = row.error
            if error is None and row.finish_reason == "cancelled" and not ticket.cancelled.is_set():
                error = OverloadedError("The server is shutting down; retry on another replica.")
            result = self.engine.scored_result(row)
            if self._on_tokens is not None:
                self._on_tokens(len(row.token_ids))
            _call_soon(ticket.loop, self._deliver, ticket, position, result, error)

        return finished

    @staticmethod
    def _deliver(
        ticket: Ticket, position: int, result: GenerationResult, error: BaseException | None
    ) -> None:
        """Runs on the event loop: collect a row's result, complete the ticket on the last."""
        if ticket.done.done():
            return
        if error is not None:
            ticket.done.set_exception(as_user_error(error))
        else:
            ticket.results[position] = result
            if len(ticket.results) < len(ticket.rows):
                return
            results = [ticket.results[i] for i in range(len(ticket.rows))]
            ticket.done.set_result(results if ticket.stream is not None else chosen(results))
        if ticket.stream is not None:
            ticket.stream.put_nowait(None)
