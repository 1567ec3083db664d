"""Continuous batching: the one scheduler behind ``generate`` and ``serve``.

Rows wait in a bounded queue. Whoever drives the scheduler (the CLI's main thread, or the
server's worker thread) takes a first batch, after waiting up to ``max_wait_ms`` for company,
and runs it through the engine's decode loop; before every token step, queued rows join the
running batch (up to ``max_batch_size``). Each row's ``on_finish`` fires the moment it is done.
A cancelled row still queued is dropped; a batch that fails fails every row in it (``row.error``)
and the scheduler goes on with the next.

``generate_ordered`` drives it for an iterable of prompts (stdin, a list) and yields results in
input order as soon as each and everything before it is done.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from quotegen.config import DEFAULT_BATCH_SIZE, PROMPT_READER
from quotegen.engine.choosing import candidates
from quotegen.engine.generation import TextEngine, TextStream
from quotegen.engine.rows import Row
from quotegen.errors import OverloadedError, QuotegenError
from quotegen.schemas import GenerationResult
from quotegen.settings import GenerationSettings


class Scheduler:
    """A bounded row queue feeding one engine's decode loop, batch after batch."""

    def __init__(
        self,
        engine: TextEngine,
        *,
        max_batch_size: int = DEFAULT_BATCH_SIZE,
        max_wait_ms: float = 0.0,
        max_queue: int = 256,
        on_batch: Callable[[int], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
        on_running: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise QuotegenError("The batch size must be at least 1.")
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._on_queue = on_queue
        self._on_running = on_running
        self._queue: deque[Row] = deque()
        self._cond = threading.Condition()
        self._closed = False
        # Rows in the running batch, with the on_finish each came with.
        self._running: dict[int, tuple[Row, Callable[[Row], None] | None]] = {}
        self._thread: threading.Thread | None = None

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, rows: Sequence[Row], *, block: bool = False) -> None:
        """Queue rows (their ``on_finish`` is called when each is done).

        A full queue refuses at once with ``OverloadedError``, or with ``block`` waits for
        room (a one-process pipeline wants back-pressure, a server wants a quick 503).
        """
        with self._cond:
            while True:
                if self._closed:
                    raise OverloadedError("The server is shutting down; retry on another replica.")
                room = self.max_queue - len(self._queue)
                # An empty queue takes any request, however many rows it brings.
                if len(rows) <= room or not self._queue:
                    break
                if not block:
                    raise OverloadedError(
                        f"The server is busy: {len(self._queue)} rows are queued (limit "
                        f"{self.max_queue}). Retry shortly."
                    )
                self._cond.wait()
            self._queue.extend(rows)
            self._report()
            self._cond.notify_all()

    def close(self) -> None:
        """No more rows: ``drive`` returns once the queue and the running batch are empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    # -- driving ------------------------------------------------------------------------------

    def drive(self) -> Iterator[None]:
        """Run batches on this thread until closed and empty; yields after every token step."""
        while (rows := self._take_batch()) is not None:
            if not rows:
                continue
            if self._on_batch is not None:
                self._on_batch(len(rows))
            try:
                yield from self.engine.steps(rows, admit=self._admit)
            except Exception as exc:  # the model failed: every row still running fails with it
                with self._cond:
                    failed = [row for row, _ in self._running.values()]
                for row in failed:
                    row.error = exc
                    row.finish("stop")
                    self._finished(row)
            finally:
                with self._cond:
                    self._report()
                    self._cond.notify_all()

    def start(self) -> None:
        """Drive on a worker thread (the server)."""

        def work() -> None:
            for _ in self.drive():
                pass

        self._thread = threading.Thread(target=work, name="quotegen-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued and running (within ``timeout``), then stop the worker;
        rows still queued after that are cancelled."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._queue or self._running) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for row in left:
            row.finish("cancelled")
            self._deliver(row)
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))

    # -- inside the loop ----------------------------------------------------------------------

    def _take_batch(self) -> list[Row] | None:
        """Block until there is work (None once closed and empty), give company a few
        milliseconds, take a first batch."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            # A short wait lets concurrent requests start together.
            deadline = time.monotonic() + self.max_wait_ms / 1000
            while len(self._queue) < self.max_batch_size and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._pop_rows(self.max_batch_size)

    def _admit(self, running: int) -> list[Row]:
        """Asked by the decode loop before each step: queued rows that fit in the batch."""
        if not self._queue:  # unlocked peek: the common case costs nothing
            return []
        with self._cond:
            rows = self._pop_rows(self.max_batch_size - running)
        if rows and self._on_batch is not None:
            self._on_batch(len(rows))
        return rows

    def _pop_rows(self, room: int) -> list[Row]:
        """Move up to ``room`` live rows from the queue to the running set (lock held)."""
        rows: list[Row] = []
        cancelled: list[Row] = []
        while self._queue and len(rows) < room:
            row = self._queue.popleft()
            if row.is_cancelled is not None and row.is_cancelled():
                row.finish("cancelled")
                cancelled.append(row)
                continue
            self._running[id(row)] = (row, row.on_finish)
            row.on_finish = self._finished
            rows.append(row)
        self._report()
        self._cond.notify_all()  # room in the queue for a blocked submitter
        for row in cancelled:
            self._deliver(row)
        return rows

    def _finished(self, row: Row) -> None:
        """A running row is done: deliver it now, not when the whole batch ends."""
        with self._cond:
            _, row.on_finish = self._running.pop(id(row), (row, None))
            self._report()
            self._cond.notify_all()
        self._deliver(row)

    @staticmethod
    def _deliver(row: Row) -> None:
        if row.on_finish is not None:
            row.on_finish(row)

    def _report(self) -> None:
        if self._on_queue is not None:
            self._on_queue(len(self._queue))
        if self._on_running is not None:
            self._on_running(len(self._running))


def generate_ordered(
    engine: TextEngine,
    prompts: Iterable[str],
    settings: GenerationSettings,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[GenerationResult]:
    """Results in input order, each as soon as it and every result before it is done.

    Prompts are read and tokenized on a background thread, so a slow producer (a pipe) never
    waits for a full batch, and prompts that arrive while a batch runs join it at the next
    token step. Seeds depend on each prompt's position only: results do not depend on how the
    input was batched. A bad prompt, or an error reading the input, is raised after every
    result before it has been yielded.
    """
    scheduler = Scheduler(engine, max_batch_size=batch_size, max_queue=max(256, 4 * batch_size))
    width = candidates(settings)
    finished: dict[int, list[Row]] = {}
    lock = threading.Lock()
    failure: list[BaseException] = []

    def collect(row: Row) -> None:
        with lock:
            finished.setdefault(row.index, []).append(row)

    def feed() -> None:
        try:
            for index, prompt in enumerate(prompts):
                rows = engine.prepare([prompt], settings, start_index=index)
                for row in rows:
                    row.on_finish = collect
                scheduler.submit(rows, block=True)
        except BaseException as exc:  # handed to the consumer, after the results before it
            failure.append(exc)
        finally:
            scheduler.close()

    # A daemon thread: on Ctrl-C the process must not wait for a blocked stdin read.
    threading.Thread(target=feed, name=PROMPT_READER, daemon=True).start()
    emitted = 0

    def ready() -> Iterator[GenerationResult]:
        nonlocal emitted
        while True:
            with lock:
                rows = finished.get(emitted, [])
                if len(rows) < width:
                    return
                del finished[emitted]
            yield from engine.chosen(rows)
            emitted += 1

    try:
        for _ in scheduler.drive():
            yield from ready()
        yield from ready()
    finally:
        scheduler.close()
    if failure:
        raise failure[0]


class LocalQuotes:
    """Results from a local engine as JSON records, one of the two sources ``generate`` reads
    (``client.RemoteQuotes`` is the other): ``results`` in input order, ``stream`` for one
    prompt printed token by token."""

    def __init__(self, engine: TextEngine, settings: GenerationSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.samples = settings.n
        self.clean = settings.clean

    def results(self, prompts: Iterable[str], batch_size: int) -> Iterator[dict[str, Any]]:
        for result in generate_ordered(self.engine, prompts, self.settings, batch_size=batch_size):
            yield result.model_dump(mode="json")

    def stream(self, prompt: str) -> LocalStream:
        return LocalStream(self.engine.stream(prompt, self.settings))


class LocalStream:
    """A ``TextStream`` whose ``result`` is a JSON record, as a server's stream gives it."""

    def __init__(self, stream: TextStream) -> None:
        self._stream = stream
        self.prompt = stream.prompt
        self.result: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[str]:
        yield from self._stream
        assert self._stream.result is not None
        self.result = self._stream.result.model_dump(mode="json")
