"""Measure the bundled model quotegen-mini against the targets of its issue.

    .venv/bin/python bench/bundled_quality.py   # needs: apt-get install fortunes fortunes-min

Prints (and writes bench/results/bundled_quality.json): size, load time, held-out perplexity
(recomputed on the same 5 % split the recipe held out), and for 200 samples of seed 2's
default prompts the share that ends at a sentence boundary and the share that copies a
training quote verbatim, plus ten samples.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from quotegen.config import DEFAULT_PROMPTS
from quotegen.corpus import fortunes_corpus, split_quotes
from quotegen.evaluation import perplexity
from quotegen.generation import Engine
from quotegen.model import bundled_model_dir, load_model, parse_model_ref
from quotegen.settings import GenerationSettings

SENTENCE_END = (".", "!", "?", '."', '!"', '?"', ".'", ".)", "!)", "?)")


def main() -> None:
    folder = bundled_model_dir()
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    load_model(parse_model_ref("quotegen-mini"), device="cpu")  # imports warm
    started = time.perf_counter()
    loaded = load_model(parse_model_ref("quotegen-mini"), device="cpu")
    load_seconds = time.perf_counter() - started

    quotes = fortunes_corpus()
    train, held_out = split_quotes(quotes, 0.05, seed=0)
    held_out_ppl = perplexity(loaded.model, loaded.tokenizer, held_out, batch_size=64)

    generator = Engine(loaded)
    prompts = [p for p in DEFAULT_PROMPTS for _ in range(50)]
    settings = GenerationSettings(seed=2026, max_new_tokens=48)
    started = time.perf_counter()
    results = generator.generate(prompts, settings, batch_size=32)
    gen_seconds = time.perf_counter() - started
    texts = [r.text for r in results]
    boundary = sum(t.rstrip().endswith(SENTENCE_END) for t in texts) / len(texts)
    known = {q.lower().strip() for q in train}
    copies = sum(t.lower().strip() in known for t in texts) / len(texts)

    report = {
        "size_mb": round(size / 1e6, 2),
        "load_seconds": round(load_seconds, 3),
        "held_out_quotes": len(held_out),
        "held_out_perplexity": round(held_out_ppl, 2),
        "samples": len(texts),
        "sentence_boundary_rate": round(boundary, 3),
        "verbatim_copy_rate": round(copies, 3),
        "generation_seconds": round(gen_seconds, 1),
        "examples": texts[::20][:10],
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bundled_quality.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
