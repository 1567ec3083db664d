"""min-p beside quotegen's default truncation (top-k 50 + top-p 0.9) as the temperature rises.

    .venv/bin/python bench/minp.py [--samples 8] [--model quotegen-135m]     # ~3 min

One engine, the quality bench's 25 prompts, the same seeds for every row: for each
temperature, the default truncation and min-p 0.1 (top-k and top-p off). Printed per row:
the share of words not in the dictionary, of texts ending a sentence, of distinct texts and
of distinct word bigrams, and their ratios to the default truncation at the same
temperature. JSON in bench/results/minp.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from quality import PROMPTS, SENTENCE_END, WORD, is_word

from quotegen.config import DEFAULT_MODEL_NAME
from quotegen.engine.generation import Engine
from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.training.vocab import read_dictionary

CHOICES = {
    "top-k 50, top-p 0.9": {"top_k": 50, "top_p": 0.9, "min_p": 0.0},
    "min-p 0.1": {"top_k": 0, "top_p": 1.0, "min_p": 0.1},
}


def measures(texts: list[str], dictionary: set[str]) -> dict[str, float]:
    words = [w for t in texts for w in WORD.findall(t)]
    pairs = [tuple(t.lower().split()[i : i + 2]) for t in texts for i in range(len(t.split()) - 1)]
    return {
        "non_word_rate": sum(not is_word(w, dictionary) for w in words) / max(1, len(words)),
        "sentence_end_rate": sum(bool(SENTENCE_END.search(t)) for t in texts) / len(texts),
        "distinct_rate": len(set(texts)) / len(texts),
        "distinct_bigrams": len(set(pairs)) / max(1, len(pairs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--samples", type=int, default=8, help="per prompt")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--temperatures", default="0.9,1.3,1.7")
    args = parser.parse_args()

    dictionary = read_dictionary()
    engine = Engine(load_model(parse_model_ref(args.model), place("cpu")))
    rows = []
    for temperature in (float(t) for t in args.temperatures.split(",")):
        baseline: dict[str, float] = {}
        for name, choice in CHOICES.items():
            given = {"seed": args.seed, "n": args.samples, "temperature": temperature, **choice}
            texts = [r.text for r in engine.generate(PROMPTS, engine.settings(given))]
            found = measures(texts, dictionary)
            baseline = baseline or found
            common.log(f"T={temperature} {name}: {texts[:3]}")
            rows.append(
                {
                    "temperature": temperature,
                    "truncation": name,
                    **{k: round(v, 4) for k, v in found.items()},
                    "non_words_vs_default": round(
                        found["non_word_rate"] / max(1e-9, baseline["non_word_rate"]), 2
                    ),
                    "bigrams_vs_default": round(
                        found["distinct_bigrams"] / baseline["distinct_bigrams"], 3
                    ),
                }
            )
    common.report("minp", rows, {"model": args.model, "samples_per_prompt": args.samples})


if __name__ == "__main__":
    main()
