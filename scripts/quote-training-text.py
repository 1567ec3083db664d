"""The default model's training text, from the corpus that ``python -m modelbuild.corpus`` built.

    python scripts/quote-training-text.py CORPUS_DIR OUT_FILE

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

import random
import re
import sys
from pathlib import Path

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
    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    held_out = set((corpus / "validation.txt").read_text("utf-8").splitlines())
    rng = random.Random(0)
    kept: list[str] = []
    for line in (corpus / "corpus.txt").read_text("utf-8").splitlines():
        saying = as_saying(line) if line not in held_out else None
        if saying is None or sentences(saying) > 2:
            continue
        if rng.random() < LOWER_SHARE and re.match(r"[A-Z][a-z]", saying):
            saying = saying[0].lower() + saying[1:]
        kept.append(saying)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(s + "\n" for s in kept), "utf-8")
    print(f"{len(kept)} sayings -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
