"""Reading what users give: prompts on stdin, and quotes files for training and evaluation.

A quotes file is one quote per line (``.txt``), or ``.jsonl`` / ``.csv`` with a text column.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from quotegen.errors import InputError
from quotegen.text import collapse_whitespace

TEXT_COLUMNS = ("text", "quote", "content", "sentence")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Conversation:
    """A chat training example (OpenAI's fine-tuning format, ``{"messages": [...]}``): the
    model learns the last message, the assistant's reply, from the turns before it."""

    messages: tuple[tuple[str, str], ...]  # (role, content)

    @property
    def reply(self) -> str:
        return self.messages[-1][1]

    def as_dicts(self, end: int | None = None) -> list[dict[str, str]]:
        return [{"role": role, "content": text} for role, text in self.messages[:end]]

    def key(self) -> str:
        """One line that stands for the conversation (training fingerprints)."""
        return json.dumps(self.messages)


#: A training example: a plain quote, or a conversation whose last reply is learned.
Example = str | Conversation


def stdin_lines() -> Iterator[bytes]:
    """stdin's lines, read from the file descriptor itself where there is one.

    Prompts are read on a background thread (so lines join a running batch as they arrive);
    a thread blocked inside ``sys.stdin.buffer`` at exit (Ctrl-C) holds the buffer's lock, and
    Python aborts the process at shutdown. ``os.read`` holds no such lock.
    """
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        yield from sys.stdin.buffer  # an in-memory stdin (tests): no descriptor, no blocking
        return
    pending: list[bytes] = []
    while chunk := os.read(fd, 1 << 16):
        *complete, rest = chunk.split(b"\n")
        for part in complete:
            pending.append(part)
            yield b"".join(pending) + b"\n"
            pending.clear()
        if rest:
            pending.append(rest)
    if pending:
        yield b"".join(pending)


def stdin_prompts() -> Iterator[str]:
    """One prompt per stdin line; invalid UTF-8 is an error naming the line."""
    for number, raw in enumerate(stdin_lines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"Line {number} of stdin is not valid UTF-8 (byte {exc.start + 1}). "
                "Convert it first, e.g. with iconv."
            ) from exc
        yield line.rstrip("\r\n")


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
    quotes = [collapse_whitespace(q) for q in raw]
    quotes = [q for q in quotes if q]
    if not quotes:
        raise InputError(f"'{path}' holds no quotes.")
    return quotes


def read_examples(path: Path, text_column: str | None = None) -> list[Example]:
    """Training examples: a quotes file's quotes, and in ``.jsonl`` also conversations
    (rows with ``messages``, the last one the assistant's), the two mixed as given."""
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return list(read_quotes(path, text_column))
    rows = _jsonl_rows(path, path.read_text("utf-8"))
    plain = [row for row in rows if "messages" not in row]
    column = _pick_column(path, plain[0].keys(), text_column) if plain else ""
    examples: list[Example] = []
    for number, row in enumerate(rows, start=1):
        if "messages" in row:
            examples.append(_conversation(path, number, row["messages"]))
        elif text := collapse_whitespace(str(row.get(column) or "")):
            examples.append(text)
    if not examples:
        raise InputError(f"'{path}' holds no examples.")
    return examples


def _conversation(path: Path, number: int, messages: object) -> Conversation:
    where = f"Row {number} of '{path}'"
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{where}: messages must be a non-empty list.")
    turns: list[tuple[str, str]] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InputError(f"{where}: each message needs a role ({', '.join(ROLES)}).")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InputError(f"{where}: each message needs a text content.")
        turns.append((str(message["role"]), content.strip()))
    if turns[-1][0] != "assistant" or len(turns) < 2:
        raise InputError(f"{where}: the last message must be the assistant's reply to a turn.")
    return Conversation(tuple(turns))


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
    rows = _jsonl_rows(path, text)
    if not rows:
        return []
    column = _pick_column(path, rows[0].keys(), wanted)
    return [str(row.get(column) or "") for row in rows]


def _jsonl_rows(path: Path, text: str) -> list[dict[str, object]]:
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
    return rows


def _csv_texts(path: Path, text: str, wanted: str | None) -> list[str]:
    reader = csv.DictReader(text.splitlines())
    column = _pick_column(path, reader.fieldnames or [], wanted)
    return [row.get(column) or "" for row in reader]
