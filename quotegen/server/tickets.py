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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from quotegen.engine.choosing import candidates
from quotegen.engine.generation import TextEngine
from quotegen.engine.rows import Row
from quotegen.engine.scheduler import Scheduler
from quotegen.errors import OverloadedError, RequestTimeoutError, as_user_error
from quotegen.schemas import GenerationResult
from quotegen.settings import GenerationSettings


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
    #: Results by (prompt index, sample), delivered on the event loop.
    results: dict[tuple[int, int], GenerationResult] = field(default_factory=dict)
    #: Each prompt's finished candidate rows, gathered on the worker thread.
    candidates: dict[int, list[Row]] = field(default_factory=dict)
    #: How many results complete the ticket.
    expected: int = 0

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
        chat: bool = False,
    ) -> Ticket:
        """Queue a request (call from the event loop); refuses at once when the queue is full.
        ``chat``: the prompts are rendered conversations (``TextEngine.prepare``)."""
        if stream:  # pieces go out as they come: no candidates to choose from
            settings = settings.model_copy(update={"best_of": 1})
        rows = self.engine.prepare(
            prompts, settings, start_index=start_index, strict_context=True, chat=chat
        )
        if stream:
            rows = [row for row in rows if row.sample < settings.n]
        loop = asyncio.get_running_loop()
        ticket = Ticket(
            rows=rows,
            loop=loop,
            done=loop.create_future(),
            stream=asyncio.Queue() if stream else None,
            expected=len(rows) if stream else len(prompts) * settings.n,
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
        """Runs on the worker thread when a row is done. A streamed row's result goes to the
        event loop as it is; otherwise, once a prompt's candidates are all done, its quotes
        are chosen here (scored, repeats redrawn: ``engine.chosen``) and go together."""

        def finished(row: Row) -> None:
            error = row.error
            if error is None and row.finish_reason == "cancelled" and not ticket.cancelled.is_set():
                error = OverloadedError("The server is shutting down; retry on another replica.")
            if self._on_tokens is not None:
                self._on_tokens(len(row.token_ids))
            if error is not None or ticket.stream is not None:
                results = [] if error is not None else [self.engine.result(row)]
                _call_soon(ticket.loop, self._deliver, ticket, results, error)
                return
            group = ticket.candidates.setdefault(row.index, [])
            group.append(row)
            if len(group) < candidates(row.settings) or ticket.cancelled.is_set():
                return
            try:
                results = self.engine.chosen(group)
            except Exception as exc:  # a failed redraw fails the request, not the worker
                _call_soon(ticket.loop, self._deliver, ticket, [], exc)
                return
            _call_soon(ticket.loop, self._deliver, ticket, results, None)

        return finished

    @staticmethod
    def _deliver(
        ticket: Ticket, results: list[GenerationResult], error: BaseException | None
    ) -> None:
        """Runs on the event loop: collect results, complete the ticket with the last."""
        if ticket.done.done():
            return
        if error is not None:
            ticket.done.set_exception(as_user_error(error))
        else:
            ticket.results.update({(r.index, r.sample): r for r in results})
            if len(ticket.results) < ticket.expected:
                return
            ticket.done.set_result([ticket.results[key] for key in sorted(ticket.results)])
        if ticket.stream is not None:
            ticket.stream.put_nowait(None)
