"""The default model's training examples, from the corpus that ``python -m modelbuild.corpus``
built, in two framings (``modelbuild/framing.py``): plain sayings and chat requests for a
quote about a topic.

    python scripts/quote-training-text.py CORPUS_DIR OUT_FILE.jsonl [PLAIN CHAT] [--uniform]

PLAIN plain sayings and CHAT conversations (default 4500 and 5500) are drawn by weight
(``--uniform``: every saying weighs 1, to measure what the weighting does).

- The sayings of ``corpus.txt`` less those of ``validation.txt`` (bench/quality.py measures
  bits per byte there, so they stay unseen).
- At most two sentences each: a quote is one or two sentences, and the model learns the
  length it is shown.
- Fortune-file definitions ("Manual, n.: A unit of documentation.") read as sayings
  ("Manual is a unit of documentation."), or are left out: as ``Word: definition`` lines they
  taught a one-word prompt to go on with a colon.
- A third of the sayings begin in lower case (not "I"): users type "love" or "life is", and
  a model that only ever saw capitals reads a lower-case start as the middle of something.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

from modelbuild.framing import Saying, conversation, read_sayings, weighted_sample

SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z\"'(])")
DEFINITION = re.compile(r"^([A-Z][\w' -]*), ((?:[a-z]+\.\s*)+):?\s+(.*)$")
LOWER_SHARE = 1 / 3


def sentences(text: str) -> int:
    return len([part for part in SENTENCE.split(text) if part.strip()])


def as_saying(text: str) -> str | None:
    match = DEFINITION.match(text)
    if match is None:
        return text
    word, kind, definition = match.groups()
    if not kind.startswith("n.") or not re.match(r"(A|An|The) [a-z]", definition):
        return None
    return f"{word.strip()} is {definition[0].lower()}{definition[1:]}"


def main() -> None:
    uniform = "--uniform" in sys.argv
    argv = [a for a in sys.argv if a != "--uniform"]
    corpus, out = Path(argv[1]), Path(argv[2])
    n_plain, n_chat = (int(argv[3]), int(argv[4])) if len(argv) > 4 else (4500, 5500)
    held_out = set((corpus / "validation.txt").read_text("utf-8").splitlines())
    rng = random.Random(0)
    sayings: list[Saying] = []
    for saying in read_sayings(corpus, held_out):
        text = as_saying(saying.text)
        if text is not None and sentences(text) <= 2:
            kept = 1.0 if uniform else saying.weight
            sayings.append(Saying(text, saying.source, kept, saying.topics))
    rows: list[dict[str, object]] = []
    for saying in weighted_sample(sayings, n_plain, rng):
        text = saying.text
        if rng.random() < LOWER_SHARE and re.match(r"[A-Z][a-z]", text):
            text = text[0].lower() + text[1:]
        rows.append({"text": text})
    answering = [s for s in sayings if s.topics and s.weight >= 1.0]
    by_topic: dict[str, list[Saying]] = {}
    for saying in answering:
        by_topic.setdefault(saying.topics[0], []).append(saying)
    for saying in weighted_sample(answering, n_chat, rng):
        rows.append({"messages": conversation(saying, by_topic, rng)})
    rng.shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    print(
        f"{len(sayings)} sayings, {len(answering)} with a topic -> {n_plain} plain and "
        f"{n_chat} chat examples in {out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
