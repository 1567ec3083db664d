"""Quote corpora: held-out splits, and the Debian fortune cookies the bundled model learns.

Reading a user's quotes file is ``quotegen.inputs``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path

from quotegen.errors import InputError
from quotegen.text import collapse_whitespace

FORTUNES_DIR = Path("/usr/share/games/fortunes")
#: Collections that are pictures or reference lists, not sayings.
FORTUNES_SKIP = {"art", "ascii-art", "definitions", "translate-me", "debian", "perl", "linux"}

_ATTRIBUTION = re.compile(r"^\s*(--|~~|—)\s*\S")


def split_quotes(
    quotes: Sequence[str], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """A seeded shuffle, then ``val_fraction`` held out (at least one of each when possible)."""
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"--val-split must be between 0 and 1, not {val_fraction}.")
    if len(quotes) < 2:
        raise InputError("At least two quotes are needed: one to train on, one to validate.")
    order = list(quotes)
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, max(1, round(len(order) * val_fraction)))
    return order[n_val:], order[:n_val]


def parse_fortunes(text: str, *, max_chars: int = 200) -> list[str]:
    """Sayings of one fortune file: ``%``-separated entries, attribution lines removed,
    one line each, very long entries and pictures dropped."""
    quotes = []
    for entry in re.split(r"^%\s*$", text, flags=re.M):
        lines = [line for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
        quote = collapse_whitespace(" ".join(lines))
        if not quote or len(quote) > max_chars or len(quote.split()) < 3:
            continue
        letters = sum(c.isalpha() for c in quote)
        if letters < 0.6 * len(quote.replace(" ", "")):
            continue  # ASCII art, tables, code
        quotes.append(quote)
    return quotes


def fortunes_corpus(folder: Path = FORTUNES_DIR, *, max_chars: int = 200) -> list[str]:
    """Deduplicated sayings from Debian's ``fortunes`` / ``fortunes-min`` (never ``off/``)."""
    if not folder.is_dir():
        raise InputError(
            f"No fortune files in '{folder}'. Install them: apt-get install fortunes fortunes-min"
        )
    seen: set[str] = set()
    quotes: list[str] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix or path.name in FORTUNES_SKIP:
            continue
        for quote in parse_fortunes(path.read_text("utf-8", "replace"), max_chars=max_chars):
            key = quote.lower()
            if key not in seen:
                seen.add(key)
                quotes.append(quote)
    return quotes


def main() -> None:
    """``python -m quotegen.corpus [FOLDER]``: the fortune corpus, one quote per line."""
    import sys

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else FORTUNES_DIR
    sys.stdout.write("".join(q + "\n" for q in fortunes_corpus(folder)))


if __name__ == "__main__":
    main()
