"""Output quality of a model, measured as a reader would judge its quotes.

    .venv/bin/python bench/quality.py                      # the bundled model
    .venv/bin/python bench/quality.py --model ./my-model --samples 8

Generates ``--samples`` quotes for each of 25 prompts (one-word prompts among them) with the
model's own default settings and a fixed seed, then reports:

- non-words: the share of words not in an English dictionary (Debian's ``wamerican-large``);
- clean outputs: the share of outputs with no non-word at all;
- sentence ends: the share ending in ``.``, ``!`` or ``?`` (a closing quote may follow);
- distinct: the share of different outputs;
- glued prompts: for prompts ending in a letter, the share whose continuation adds letters to
  the prompt's last word ("fear" -> "Fearh can ...");
- verbatim copies: outputs that are a training quote;
- bits per byte on held-out quotes: the corpus's validation split and modern quotes from
  sources the model never saw (see quotegen/corpus.py), with the unknown-token rate;
- load time against the previous kind of bundled model, side by side: a 4-layer, 256-wide
  GPT-2 with a 4,096-piece byte-level BPE trained on the same corpus, float32 weights, built
  on the spot (``load_model``, warm imports, alternating, median of 7); and, reported beside
  it, a whole cold ``quotegen generate`` of one token with each (interpreter, imports, load:
  what a user waits for; alternating, median of 5).

The corpus comes from ``python -m quotegen.corpus`` (``--corpus DIR``, built there if absent).
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

from quotegen.config import TRAIN
from quotegen.corpus import split_quotes
from quotegen.evaluation import bits_per_byte
from quotegen.generation import Engine
from quotegen.model import load_model, parse_model_ref
from quotegen.vocab import read_dictionary

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
    "bits_per_byte": "<= 1.8",
    "load_time_ratio": "<= 1.0",
}
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


def is_word(word: str, dictionary: set[str]) -> bool:
    forms = {word, word.lower(), word.capitalize()}
    forms |= {f[:-2] for f in forms if f.endswith("'s")}
    return any(f in dictionary for f in forms)


def corpus_files(folder: Path) -> tuple[list[str], list[str]]:
    if not (folder / "corpus.txt").exists():
        common.log(f"building the corpus into {folder}")
        subprocess.run([common.PYTHON, "-m", "quotegen.corpus", str(folder)], check=True)
    train = (folder / "corpus.txt").read_text("utf-8").splitlines()
    modern = (folder / "held-out-modern.txt").read_text("utf-8").splitlines()
    return train, modern


def previous_kind(quotes: list[str], folder: Path) -> Path:
    """The previous bundled model's kind, random weights (loading does not depend on them)."""
    from quotegen.training import new_gpt2, train_tokenizer

    tokenizer = train_tokenizer(quotes, 4096, 128)
    model = new_gpt2(tokenizer, n_positions=128, n_embd=256, n_layer=4, n_head=4, seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load_seconds(models: dict[str, str], runs: int = 7) -> dict[str, float]:
    """Median ``load_model`` time of each model, loaded alternately after one warm-up each."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for run in range(runs + 1):
        for name, ref in models.items():
            started = time.perf_counter()
            load_model(parse_model_ref(ref), device="cpu")
            if run:
                times[name].append(time.perf_counter() - started)
    return {name: common.median(values) for name, values in times.items()}


def cold_start_seconds(models: dict[str, str], runs: int = 5) -> dict[str, float]:
    """Median wall time of a cold ``quotegen generate`` of one token with each model, run
    alternately after one warm-up each (one token: the previous kind's random weights never
    stop on their own)."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for run in range(runs + 1):
        for name, ref in models.items():
            command = [common.PYTHON, "-m", "quotegen", "generate", "-q", "--model", ref]
            seconds = common.run_timed([*command, "-t", "1", "--seed", "1", "life is"])
            if run:
                times[name].append(seconds)
    return {name: common.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="quotegen-mini")
    parser.add_argument("--samples", type=int, default=8, help="per prompt")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--corpus", type=Path, default=common.CACHE / "corpus")
    parser.add_argument(
        "--val-split", type=float, default=TRAIN.val_split, help="as the model was trained"
    )
    args = parser.parse_args()

    dictionary = read_dictionary()
    train_all, modern = corpus_files(args.corpus)
    _, validation = split_quotes(train_all, args.val_split, seed=TRAIN.seed)
    loaded = load_model(parse_model_ref(args.model), device="cpu")
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
    bpb_val, _ = bits_per_byte(loaded.model, loaded.tokenizer, validation)
    bpb_modern, unk_modern = bits_per_byte(loaded.model, loaded.tokenizer, modern)
    held_out = validation + modern
    bpb, unknown = bits_per_byte(loaded.model, loaded.tokenizer, held_out)
    with tempfile.TemporaryDirectory() as scratch:
        baseline = previous_kind(train_all, Path(scratch))
        load = load_seconds({"model": args.model, "previous": str(baseline)})
        cold = cold_start_seconds({"model": args.model, "previous": str(baseline)})

    measures = {
        "non_word_rate": len(non_words) / max(1, len(words)),
        "clean_output_rate": len(clean) / len(texts),
        "sentence_end_rate": sum(bool(SENTENCE_END.search(t)) for t in texts) / len(texts),
        "distinct_rate": len(set(texts)) / len(texts),
        "glued_prompt_rate": len(glued) / max(1, len(word_ending)),
        "verbatim_copy_rate": len(copies) / len(texts),
        "bits_per_byte": bpb,
        "load_time_ratio": load["model"] / load["previous"],
    }
    rows = [
        {
            "measure": name,
            "value": round(value, 4),
            "target": TARGETS[name],
            "met": common.meets(value, TARGETS[name]),
        }
        for name, value in measures.items()
    ]
    details = {
        "model": args.model,
        "settings": settings.model_dump(),
        "outputs": len(texts),
        "words": len(words),
        "generation_seconds": round(seconds, 1),
        "bits_per_byte_validation": round(bpb_val, 4),
        "bits_per_byte_modern": round(bpb_modern, 4),
        "unknown_token_rate": round(unknown, 5),
        "unknown_token_rate_modern": round(unk_modern, 5),
        "load_seconds": round(load["model"], 4),
        "load_seconds_previous_kind": round(load["previous"], 4),
        "cold_start_seconds": round(cold["model"], 3),
        "cold_start_seconds_previous_kind": round(cold["previous"], 3),
        "cold_start_ratio": round(cold["model"] / cold["previous"], 3),
        "held_out": {"validation": len(validation), "modern": len(modern)},
        "non_word_examples": sorted(set(non_words))[:40],
        "samples": {p: [r.text for r in results if r.prompt == p] for p in PROMPTS},
    }
    common.report("quality", rows, details)
    print(json.dumps({k: details[k] for k in list(details)[:10]}, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
