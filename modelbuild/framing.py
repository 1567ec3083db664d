"""The default model's training examples in two framings, from the corpus's sayings.

- **Plain**: the saying alone (``<|endoftext|>`` + saying + ``<|endoftext|>``), so a prompt's
  words are continued as a quote, as before.
- **Chat**: a request for a quote about a topic, in the base's own chat template, answered by
  the saying: ``Write a quote about courage.`` -> a saying whose salient word is "courage".
  The topic is a noun of the saying (WordNet's noun index), one word or two ("X and Y", or an
  adjective and its noun as they stand in the saying); the phrasings vary, some requests carry
  a system message, some follow an earlier request and its answer (the last one is answered).

Sayings are weighted by kind: aphorisms and proverbs (short general statements) over jokes,
quoted dialogue, bracketed asides and long anecdotes. The weights choose which sayings the
build samples (plain) and which answer requests (chat: weight 1 or more only).

The topics and phrasings that measure topic-following (``EVAL_TOPICS``, ``EVAL_PHRASINGS``)
are never used to build a request.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")

#: Requests built from the corpus ("{t}": the topic).
TRAIN_PHRASINGS = (
    "Write a quote about {t}.",
    "Give me a quote about {t}.",
    "A quote about {t}, please.",
    "quote about {t}",
    "Tell me a saying about {t}.",
    "Say something wise about {t}.",
    "I need a short quote on {t}.",
    "{t}",
    "Share an aphorism about {t}.",
    "Write a one-liner about {t}.",
    "Could you give me a quote on the topic of {t}?",
    "Any good quotes about {t}?",
    "Write something memorable about {t}.",
    "a saying on {t}",
    "Quote on {t}, please",
)
#: Requests that measure topic-following: none of them is trained on.
EVAL_PHRASINGS = (
    "I'd love a quote about {t}.",
    "What's a good quote on {t}?",
    "Inspire me with a line about {t}.",
    "Can you come up with a saying about {t}?",
    "Quote me something about {t}.",
)
#: Topics that measure topic-following (chat, ``--about``): never a request's topic here.
EVAL_TOPICS = (
    "courage",
    "money",
    "friendship",
    "failure",
    "patience",
    "kindness",
    "silence",
    "ambition",
    "fear",
    "honesty",
    "leadership",
    "gratitude",
    "solitude",
    "habit",
    "music",
    "travel",
    "trust",
    "change",
    "hope",
    "time",
)
SYSTEM_MESSAGES = (
    "You are a helpful assistant.",
    "You write short, original quotes.",
    "Reply with one quote and nothing else.",
    "You are a quote generator.",
    "Be concise.",
    "You are a wise old philosopher.",
)
#: Nouns too general to be what a quote is about.
GENERIC = frozenset(
    str.split(
        """thing things way one man men woman people person something nothing anything
        everything lot kind part day year time times someone anyone everyone nobody somebody
        fact case end place side point number world sort other others lots bit piece rest
        hand hands good best better course reason mind many much more most less least ways
        use want mine longer need"""
    )
)
STOP = frozenset(
    str.split(
        """a an the and or but if of to in on at by for with from as is are was were be been
        being it its this that these those he she they them his her their you your we our i
        me my not no so than then there here what who whom which when where why how all any
        some each every do does did done have has had will would can could should may might
        must shall into out up down over under again very just only also too about"""
    )
)


@dataclass(frozen=True)
class Saying:
    text: str
    source: str
    weight: float
    topics: tuple[str, ...]  # candidate topics, the most salient first


def _tagged(path: Path) -> dict[str, int]:
    """A WordNet index's single-word lemmas and how often their senses were tagged in the
    semantic concordance (how common the word is in that part of speech)."""
    counts = {}
    for line in path.read_text("utf-8").splitlines():
        if line and not line.startswith(" "):
            fields = line.split()
            if fields[0].isalpha():
                pointers = int(fields[3])
                counts[fields[0]] = int(fields[5 + pointers])
    return counts


def nouns(wordnet: Path = WORDNET) -> frozenset[str]:
    """WordNet's single-word nouns that are not mostly verbs ("work" is a noun; "make",
    "know" and "feel" are not)."""
    verbs = _tagged(wordnet / "index.verb")
    return frozenset(
        word
        for word, tagged in _tagged(wordnet / "index.noun").items()
        if tagged >= 0.45 * verbs.get(word, 0)
    )


def adjectives(wordnet: Path = WORDNET) -> frozenset[str]:
    return frozenset(
        line.split(" ", 1)[0]
        for line in (wordnet / "index.adj").read_text("utf-8").splitlines()
        if line and not line.startswith(" ") and line.split(" ", 1)[0].isalpha()
    )


def lemma(word: str, noun_set: frozenset[str]) -> str | None:
    """The noun a word is (plural forms reduced), or None."""
    for form in (word, word[:-1] if word.endswith("s") else "", _ies(word), _es(word)):
        if form and form in noun_set:
            return form
    return None


def _ies(word: str) -> str:
    return word[:-3] + "y" if word.endswith("ies") else ""


def _es(word: str) -> str:
    return word[:-2] if word.endswith(("ches", "shes", "sses", "xes")) else ""


def weight(text: str, source: str) -> float:
    """How much a saying is worth showing: 0.25 for jokes and asides, 2 for aphorisms."""
    words = text.split()
    if (
        text.startswith(('"', "'"))
        or re.search(r"[\[\]{}0-9]|!!|\?\?|Q:|A:|\*", text)
        or len(words) > 32
        or re.search(r"\b(I'd|I'm|I've)\b", text)
    ):
        return 0.25
    general = re.match(
        r"(The|A|An|No|Never|Every|All|He who|She who|Whoever|Those who|They who|If you|"
        r"Nothing|There is|It is|One|To|Better|Love|Life|Man|Men|Wisdom|Truth)\b",
        text,
    )
    if source in ("web-proverbs-ecclesiastes", "dhammapada") and len(words) <= 30:
        return 2.0
    if len(words) <= 20 and (general or re.search(r"\b(is|are)\b", text)):
        return 2.0 if not re.search(r"\b(I|my|me)\b", text) else 1.0
    return 1.0


def topics(
    text: str, noun_set: frozenset[str], adj_set: frozenset[str], counts: Counter[str]
) -> tuple[str, ...]:
    """The saying's candidate topics: its nouns (never adjectives, never a verb's -ing or -ed
    form) that other sayings share (so they name a subject, not a detail), the most shared
    first; never an evaluation topic."""
    words = re.findall(r"[a-z]+", text.lower())
    found: list[str] = []
    for word in words:
        noun = lemma(word, noun_set)
        if (
            noun is None
            or noun in adj_set
            or word.endswith(("ing", "ed", "ly"))
            or noun in STOP
            or noun in GENERIC
            or noun in EVAL_TOPICS
            or len(noun) < 4
            or not 5 <= counts[noun] <= 3000
            or noun in found
        ):
            continue
        found.append(noun)
    found.sort(key=lambda n: -counts[n])
    pairs = []
    for first, second in itertools.pairwise(words):
        noun = lemma(second, noun_set)
        if noun in found and first in adj_set and first not in STOP and first not in noun_set:
            pairs.append(f"{first} {second}")
    return tuple(found + pairs)


def read_sayings(corpus: Path, held_out: set[str]) -> list[Saying]:
    """The corpus's sayings (less ``held_out``) with their source, weight and topics."""
    import json

    manifest = json.loads((corpus / "manifest.json").read_text("utf-8"))
    lines = (corpus / "corpus.txt").read_text("utf-8").splitlines()
    sources: list[str] = []
    for entry in manifest["sources"]:
        if entry["role"] == "train":
            sources += [entry["name"]] * entry["sayings"]
    if len(sources) != len(lines):
        raise SystemExit("corpus.txt does not match its manifest's counts")
    noun_set, adj_set = nouns(), adjectives()
    counts: Counter[str] = Counter()
    for line in lines:
        counts.update({n for w in re.findall(r"[a-z]+", line.lower()) if (n := lemma(w, noun_set))})
    return [
        Saying(line, source, weight(line, source), topics(line, noun_set, adj_set, counts))
        for line, source in zip(lines, sources, strict=True)
        if line not in held_out
    ]


def weighted_sample(sayings: Sequence[Saying], k: int, rng: random.Random) -> list[Saying]:
    """``k`` sayings drawn without replacement, in proportion to their weights."""
    keyed = sorted(sayings, key=lambda s: rng.random() ** (1.0 / s.weight), reverse=True)
    return keyed[:k]


def request(topic: str, rng: random.Random) -> str:
    phrasing = rng.choice(TRAIN_PHRASINGS)
    if rng.random() < 0.15:
        topic = topic.capitalize()
    return phrasing.format(t=topic)


def conversation(
    saying: Saying, by_topic: dict[str, list[Saying]], rng: random.Random
) -> list[dict[str, str]]:
    """A request for ``saying``'s topic, maybe after a system message and an earlier turn."""
    topic = saying.topics[0] if rng.random() < 0.6 else rng.choice(saying.topics)
    messages: list[dict[str, str]] = []
    if rng.random() < 0.2:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_MESSAGES)})
    if rng.random() < 0.12:
        other_topic = rng.choice(list(by_topic))
        other = rng.choice(by_topic[other_topic])
        if other is not saying and other_topic != topic:
            messages.append({"role": "user", "content": request(other_topic, rng)})
            messages.append({"role": "assistant", "content": other.text})
    messages.append({"role": "user", "content": request(topic, rng)})
    messages.append({"role": "assistant", "content": saying.text})
    return messages
