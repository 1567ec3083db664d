"""Where humans read: a rich console on stderr, and the one-line error presenter.

stdout carries data only; everything here goes to stderr. rich turns colour and animation off
when stderr is not a terminal and honours ``NO_COLOR``. rich is imported on first use, so
``quotegen --help`` and ``--version`` do not pay for it.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import TYPE_CHECKING

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
