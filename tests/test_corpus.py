"""Quote files and the fortune-cookie corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from quotegen.corpus import fortunes_corpus, parse_fortunes, split_quotes
from quotegen.errors import InputError
from quotegen.inputs import read_quotes

FORTUNE_FILE = (
    """A day for firm decisions!!!!!  Or is it?
%
A long-forgotten loved one will appear soon.

Buy the negatives at any price.
%
Logic is a pretty flower
that smells bad.
		-- Marvin Minsky
%
Too short
%
   /\\_/\\
  ( o.o )
   > ^ <
%
"""
    + "This one is far too long to be a short quote. " * 10
    + "\n%\n"
)


def test_parse_fortunes() -> None:
    assert parse_fortunes(FORTUNE_FILE) == [
        "A day for firm decisions!!!!! Or is it?",
        "A long-forgotten loved one will appear soon. Buy the negatives at any price.",
        "Logic is a pretty flower that smells bad.",
    ]


def test_fortunes_corpus_dedupes_and_skips(tmp_path: Path) -> None:
    (tmp_path / "wisdom").write_text(FORTUNE_FILE)
    (tmp_path / "more").write_text(
        "logic is a pretty flower that smells bad.\n%\nNew one here today.\n"
    )
    (tmp_path / "art").write_text("Pictures are skipped entirely here.\n%\n")
    (tmp_path / "wisdom.dat").write_bytes(b"\x00\x01")
    quotes = fortunes_corpus(tmp_path)
    assert "New one here today." in quotes
    assert sum(q.lower().startswith("logic is") for q in quotes) == 1
    assert not any("Pictures" in q for q in quotes)


def test_fortunes_corpus_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="apt-get install fortunes"):
        fortunes_corpus(tmp_path / "nope")


@pytest.mark.parametrize(
    ("name", "content", "column", "expected"),
    [
        ("q.txt", "one quote\n\n  two   quotes \n", None, ["one quote", "two quotes"]),
        ("q.jsonl", '{"text": "a b"}\n{"text": "c"}\n', None, ["a b", "c"]),
        ("q.jsonl", '{"quote": "x", "author": "y"}\n', None, ["x"]),
        ("q.csv", "author,quote\nme,hello there\nyou,bye\n", None, ["hello there", "bye"]),
        ("q.csv", "a,b\n1,first\n", "b", ["first"]),
    ],
)
def test_read_quotes(
    tmp_path: Path, name: str, content: str, column: str | None, expected: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert read_quotes(path, column) == expected


@pytest.mark.parametrize(
    ("name", "content", "column", "message"),
    [
        ("q.jsonl", '{"text": "a"}\nnot json\n', None, "Line 2 of"),
        ("q.jsonl", "[1, 2]\n", None, "not a JSON object"),
        ("q.csv", "a,b\n1,2\n", None, "no text column"),
        ("q.csv", "a,b\n1,2\n", "c", "has no column 'c'"),
        ("q.txt", "\n\n", None, "holds no quotes"),
    ],
)
def test_read_quotes_errors(
    tmp_path: Path, name: str, content: str, column: str | None, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_quotes(path, column)


def test_read_quotes_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_bytes(b"ok\n\xff\n")
    with pytest.raises(InputError, match="not valid UTF-8"):
        read_quotes(path)


def test_split_is_seeded_and_disjoint() -> None:
    quotes = [f"q{i}" for i in range(100)]
    train, val = split_quotes(quotes, 0.05, seed=3)
    assert (train, val) == split_quotes(quotes, 0.05, seed=3)
    assert len(val) == 5
    assert not set(train) & set(val)
    assert split_quotes(quotes, 0.05, seed=4)[1] != val
