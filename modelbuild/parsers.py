"""Reading each corpus source's own format into sayings (or sentences): fortune files,
tagged fortunes, the Dhammapada, the Devil's Dictionary, WordNet's examples, the Jargon File,
plain prose and the Bible's verses. Cleaning and de-duplication are ``modelbuild.corpus``'s.
"""

from __future__ import annotations

import re

from quotegen.text import collapse_whitespace

# Typographic quotes, dashes and ellipses as plain ASCII.
CURLY = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-"}
    | {"\u2014": " - ", "\u2026": "..."}
)

_ATTRIBUTION = re.compile(r"^\s*(--|~~|—)\s*\S")
_TFORTUNE_TAGS = re.compile(r"^-{4} ")


def parse_fortunes(text: str) -> list[str]:
    """Sayings of a ``%``-separated fortune file, attribution lines removed, one line each."""
    entries = []
    for entry in re.split(r"^%\s*$", text, flags=re.M):
        lines = [line for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
        entries.append(" ".join(lines))
    return entries


def parse_tfortunes(text: str) -> list[str]:
    """tfortunes' format: an entry, then a ``---- tags`` line; attributions after `` -- ``."""
    entries: list[str] = []
    lines: list[str] = []
    for line in text.splitlines():
        if _TFORTUNE_TAGS.match(line):
            entries.append(re.split(r"\s--\s", " ".join(lines))[0])
            lines = []
        else:
            lines.append(line)
    return entries


def parse_dhammapada(text: str) -> list[str]:
    """Verses of a Dhammapada translation: paragraphs after the preface, verse numbers gone."""
    body = text.split("The Dhammapada\n", 2)[-1]
    verses = []
    for paragraph in re.split(r"\n\s*\n", body):
        flat = collapse_whitespace(paragraph)
        # A verse ends with its number (or range); chapter headings ("1. The Pairs") do not.
        if re.search(r"\d+(-\d+)?\.?$", flat):
            verses.append(re.sub(r"\s*\(?\d+(-\d+)?\)?\.?$", "", flat))
    return verses


def parse_devil(text: str) -> list[str]:
    """The Devil's Dictionary's nouns as sayings: "LOVE, n. A temporary insanity..." reads
    "Love is a temporary insanity..." (the first paragraph of each). Entries of other parts of
    speech, or whose definition is no noun phrase, are left out: as ``Word: definition`` lines
    they taught a model to answer a one-word prompt with a colon."""
    entries = []
    for match in re.finditer(
        r"^([A-Z][A-Z' -]+), ((?:[a-z]+\.\s*)+)\s(.+?)(?:\n\s*\n|\Z)", text, flags=re.M | re.S
    ):
        word = match.group(1).strip().capitalize()
        definition = collapse_whitespace(re.sub(r"\[[^\]]*\]|[{}_]", "", match.group(3)))
        if match.group(2).split()[0] != "n." or not re.match(r"(A|An|The) [a-z]", definition):
            continue
        entries.append(f"{word} is {definition[0].lower()}{definition[1:]}")
    return entries


def parse_wordnet_examples(text: str) -> list[str]:
    """The example sentences of a WordNet ``data.*`` file (the quoted parts of each gloss), as
    sentences: first letter capitalized, a full stop where none ends them."""
    sentences = []
    for line in text.splitlines():
        if line.startswith("  ") or "|" not in line:
            continue  # the licence header
        for example in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
            example = collapse_whitespace(example)
            if example:
                end = "" if example[-1] in ".!?" else "."
                sentences.append(example[0].upper() + example[1:] + end)
    return sentences


# A Jargon File entry's head line: "   :cruft: /kruhft/, n.".
_JARGON_ENTRY = re.compile(r"^ {3}:[^\n]+?:(?: |$)[^\n]*$", flags=re.M)
# The end of a sentence: a stop (and any closing quote or bracket), then a capital; not the
# stop of a title ("Mr. Speaker", "St. Louis") or an initial ("John F. Kennedy", "U.S. Navy").
_SENTENCE_BREAK = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))"
    r"(?<!\b[A-Z]\.)(?<!\b(?:Mr|Ms|Dr|St|Jr|Sr|No)\.)(?<!\b(?:Mrs|Hon|Gen|Gov|Sen|Rep|Rev)\.)"
    r"\s+(?=[\"'(]?[A-Z])"
)


def parse_jargon(text: str) -> list[str]:
    """The sentences of the Jargon File's entries (``jargon.txt``): each paragraph of an
    entry's body, its ``{cross-references}`` as plain words, a leading ``[etymology]`` and
    sense numbers dropped, split into sentences."""
    entries = _JARGON_ENTRY.split(text.translate(CURLY))[1:]  # [0]: the front matter, index
    sentences = []
    for entry in entries:
        for paragraph in re.split(r"\n\s*\n", entry):
            paragraph = collapse_whitespace(re.sub(r"[{}]", "", paragraph))
            paragraph = re.sub(r"^\[[^\]]*\]\s*", "", paragraph)
            # A sense's number ("1. ", "2. ") is not part of a sentence.
            paragraph = re.sub(r"(?:^|(?<=[.!?] ))\d+\. (?=\S)", "", paragraph)
            sentences += [s for s in _SENTENCE_BREAK.split(paragraph) if s]
    return sentences


def parse_sentences(text: str) -> list[str]:
    """Prose as sentences: each paragraph (blank-line separated) split at its sentence ends."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        sentences += [s for s in _SENTENCE_BREAK.split(collapse_whitespace(paragraph)) if s]
    return sentences


# A verse's reference: "Genesis 1:1: ", "II Kings 2:3: ", "Song of Solomon 1:1: ",
# "Esther (Greek) 1:1: ", "Revelation of John 1:1: "; a psalm's heading may come before it.
_VERSE = re.compile(
    r"(?:^|(?<=\s))(?:I{1,3} )?[A-Z][a-z]+(?:(?: of| and the) [A-Z][a-z]+| \(Greek\))? "
    r"\d+:\d+:\s*",
    flags=re.M,
)

# Psalm 119's stanza headings (the Hebrew letters), before a verse's reference.
_ACROSTIC = re.compile(
    r"\b(?:ALEPH|BETH|GIMEL|DALETH|HE|VAV|ZAYIN|HETH|TETH|YODH|KAPF|LAMEDH|MEM|NUN|SAMEKH|"
    r"AYIN|PE|TZADHE|QOPH|RESH|SHIN|TAV)\s+(?=Psalms \d)"
)


def parse_bible(text: str) -> list[str]:
    """Bible verses (``diatheke`` output made plain), joined while a verse ends in a comma or
    no stop, so each line is whole sentences."""
    text = re.sub(r"^\(\w+\)\s*$", "", text, flags=re.M)  # the module name at the end
    text = _ACROSTIC.sub("", text)
    verses = _VERSE.split(text)[1:]
    sayings, pending = [], ""
    for verse in verses:
        pending = f"{pending} {collapse_whitespace(verse)}".strip()
        if re.search(r"[.!?;:]['\"]?$", pending):
            end = "" if pending[-1] in ".!?'\"" else "."
            sayings.append(pending.rstrip(";:").rstrip() + end)
            pending = ""
    return sayings
