"""Quote corpora: reading quote files, held-out splits, and Debian's fortune cookies.

A quotes file is one quote per line (``.txt``), or ``.jsonl`` / ``.csv`` with a text column.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from quotegen.errors import InputError

TEXT_COLUMNS = ("text", "quote", "content", "sentence")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
#: Collections that are pictures or reference lists, not sayings.
FORTUNES_SKIP = {"art", "ascii-art", "definitions", "translate-me", "debian", "perl", "linux"}

_ATTRIBUTION = re.compile(r"^\s*(--|~~|—)\s*\S")
_WHITESPACE = re.compile(r"\s+")


def read_quotes(path: Path, text_column: str | None = None) -> list[str]:
    """Non-empty quotes of a ``.txt``, ``.jsonl`` or ``.csv`` file, whitespace collapsed."""
    if not path.is_file():
        raise InputError(f"Quotes file '{path}' does not exist.")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"'{path}' is not valid UTF-8 (byte {exc.start + 1}).") from exc
    if suffix == ".jsonl":
        raw = _jsonl_texts(path, text, text_column)
    elif suffix == ".csv":
        raw = _csv_texts(path, text, text_column)
    else:
        raw = text.splitlines()
    quotes = [_WHITESPACE.sub(" ", q).strip() for q in raw]
    quotes = [q for q in quotes if q]
    if not quotes:
        raise InputError(f"'{path}' holds no quotes.")
    return quotes


def _pick_column(path: Path, columns: Iterable[str], wanted: str | None) -> str:
    names = list(columns)
    if wanted is not None:
        if wanted not in names:
            raise InputError(f"'{path}' has no column '{wanted}' (it has: {', '.join(names)}).")
        return wanted
    for name in TEXT_COLUMNS:
        if name in names:
            return name
    raise InputError(
        f"'{path}' has no text column ({', '.join(TEXT_COLUMNS)}); name one with --text-column."
    )


def _jsonl_texts(path: Path, text: str, wanted: str | None) -> list[str]:
    rows: list[dict[str, object]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"Line {number} of '{path}' is not JSON: {exc.msg}.") from exc
        if not isinstance(row, dict):
            raise InputError(f"Line {number} of '{path}' is not a JSON object.")
        rows.append(row)
    if not rows:
        return []
    column = _pick_column(path, rows[0].keys(), wanted)
    return [str(row.get(column) or "") for row in rows]


def _csv_texts(path: Path, text: str, wanted: str | None) -> list[str]:
    reader = csv.DictReader(text.splitlines())
    column = _pick_column(path, reader.fieldnames or [], wanted)
    return [row.get(column) or "" for row in reader]


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
        quote = _WHITESPACE.sub(" ", " ".join(lines)).strip()
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
