"""What each precision costs and buys on real models: bits per byte on held-out quotes next
to single-prompt speed, for every ``--dtype`` and ``--quantize`` choice.

    .venv/bin/python bench/quantize.py                 # about 8 minutes on 2 CPU cores
    .venv/bin/python bench/quantize.py --texts 100     # fewer held-out quotes

Models: SmolLM2-135M-Instruct (the real base, converted from the pinned Q4_1 GGUF) and the
default model quotegen-135m (that base with its quote adapter), each loaded through quotegen's
own loading code in float32, bfloat16, float16, int8 and int4. ``--model random`` times the random
GPT-2 instead (a CI smoke run: its bits per byte mean nothing).

Bits per byte: the modern held-out quotes and the corpus's validation split (``--texts`` of
each), every quote between two ``<|endoftext|>`` tokens (the default model's framing), the
same way bench/quality.py scores them. Speed: one prompt, 32 forced new tokens, median of 3.
``change_pct`` is each choice's bits per byte against the same model's float32; the target is
at most +1 % for every choice the docs offer. JSON in bench/results/quantize.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common

from quotegen.config import DEFAULT_MODEL_NAME
from quotegen.engine.generation import Engine
from quotegen.loading.locating import locate_model
from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.settings import GenerationSettings
from quotegen.training.evaluation import bits_per_byte

FRAME = "<|endoftext|>"
TOKENS = 32


def measure(name: str, model: str, texts: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for choice, options in common.CHOICES.items():
        common.log(f"{name}: {choice}")
        loaded = load_model(parse_model_ref(model), place("cpu", **options))
        frame = FRAME if FRAME in loaded.tokenizer.get_vocab() else None
        row: dict[str, Any] = {"model": name, "choice": choice}
        for split, quotes in texts.items():
            row[f"bpb_{split}"] = bits_per_byte(
                loaded.model, loaded.tokenizer, quotes, frame_token=frame
            )[0]
        engine = Engine(loaded)
        settings = GenerationSettings(**common.quotegen_settings(TOKENS), seed=1)
        engine.generate(["warm up"], GenerationSettings(**common.quotegen_settings(4), seed=1))
        seconds = []
        for prompt in common.prompts(3):
            started = time.perf_counter()
            engine.generate([prompt], settings)
            seconds.append(time.perf_counter() - started)
        row["tok_s"] = TOKENS / common.median(seconds)
        rows.append(row)
    reference = rows[0]
    for row in rows:
        changes = [row[k] / reference[k] - 1 for k in row if k.startswith("bpb_")]
        row["change_pct"] = round(100 * max(changes, key=abs), 2)
        row["speed_vs_float32"] = row["tok_s"] / reference["tok_s"]
        row["within_1pct"] = row["change_pct"] <= 1.0
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_option(parser)
    parser.add_argument("--texts", type=int, default=200, help="held-out quotes per set")
    args = parser.parse_args()
    if args.model not in (None, "real"):
        model = common.bench_model(args.model)
        texts = {"stdlib": common.stdlib_lines(args.texts)}
        rows = measure(model.name, str(model), texts)
    else:
        held_out = common.held_out_quotes()
        texts = {k: held_out[k][: args.texts] for k in ("modern", "validation")}
        locate_model(parse_model_ref(DEFAULT_MODEL_NAME), notify=common.log)
        rows = measure(common.REAL_MODEL, str(common.real_model()), texts)
        rows += measure(DEFAULT_MODEL_NAME, DEFAULT_MODEL_NAME, texts)
    common.report("quantize", rows, {"texts": {k: len(v) for k, v in texts.items()}})


if __name__ == "__main__":
    main()
