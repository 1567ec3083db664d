"""Where humans read: a rich console on stderr, the one-line error presenter, the progress
bar, the status spinner and the loading display (a first use's steps as bars).

stdout carries data only; everything here goes to stderr. rich turns colour and animation off
when stderr is not a terminal and honours ``NO_COLOR``. rich is imported on first use, so
``quotegen --help`` and ``--version`` do not pay for it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from quotegen.config import debug_enabled

if TYPE_CHECKING:
    from rich.console import Console


@lru_cache(maxsize=1)
def stderr_console() -> Console:
    """The shared console for progress, status and warnings (never for data)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def print_error(message: str) -> None:
    """Print one line ``Error: …`` on stderr, whatever the message contains."""
    from rich.text import Text

    one_line = " ".join(message.split())
    stderr_console().print(Text.assemble(("Error:", "bold red"), " ", one_line))


def print_note(message: str) -> None:
    """A one-line notice for people (e.g. which model is being used)."""
    from rich.text import Text

    stderr_console().print(Text(message, style="dim"))


class ProgressBar:
    """What a command reports progress through; a no-op where no bar is shown."""

    def __init__(self, bar: Any = None, task: Any = None) -> None:
        self._bar = bar
        self._task = task

    def update(self, done: int, total: int | None = None, info: str = "") -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, info=info)

    def note(self, line: str) -> None:
        """A line printed above the bar (e.g. one per epoch)."""
        if self._bar is not None:
            self._bar.console.print(line)


@contextmanager
def progress(label: str, *, show: bool, total: int | None = None) -> Iterator[ProgressBar]:
    """The one progress bar: a rich bar on stderr while ``show`` (and stderr is a terminal)."""
    if not show or not stderr_is_terminal():
        yield ProgressBar()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=stderr_console(),
        transient=True,
    ) as bar:
        yield ProgressBar(bar, bar.add_task(label, total=total, info=""))


@contextmanager
def loading_display(message: str, *, show: bool) -> Iterator[None]:
    """A spinner with ``message`` while the block runs, turned into a bar for each long step
    the core reports in it (``quotegen.progress``: a first use's fetch, in MB, and merge, in
    tensors); terminals only."""
    if not show or not stderr_is_terminal():
        yield
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from quotegen.progress import listening

    class _Done(MofNCompleteColumn):
        """Bytes as MB, counts as N/M: each step in its own unit."""

        def render(self, task: Any) -> Any:
            if task.fields.get("unit") == "bytes":
                return DownloadColumn().render(task)
            return super().render(task) if task.total else ""

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        _Done(),
        TimeRemainingColumn(),
        console=stderr_console(),
        transient=True,
    ) as bar:
        task = bar.add_task(message, total=None, unit="")

        def listen(step: str, done: float, total: float | None, unit: str) -> None:
            bar.update(task, description=step, completed=done, total=total, unit=unit)

        with listening(listen):
            yield


@contextmanager
def status(message: str, *, show: bool) -> Iterator[None]:
    """A spinner with a message on stderr while the block runs (terminals only)."""
    if not show or not stderr_is_terminal():
        yield
        return
    with stderr_console().status(message):
        yield


def quiet_transformers() -> None:
    """No library warnings or progress bars on stderr unless QUOTEGEN_DEBUG is set."""
    import transformers

    if debug_enabled():
        return
    import warnings

    # Deprecation and fallback notices of transformers and peft are for their developers.
    warnings.filterwarnings("ignore", module=r"(transformers|peft)(\..*)?$")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
