"""What best_of costs and buys: time per quote and the scorer's judgement, side by side.

    python bench/bestof.py [--model M] [--prompts 12] [--values 1,2,4,8] [--temperatures ...]

For each best_of, the same prompts one at a time (as a user at a terminal asks, so the
candidates of one quote are decoded together in one batch), the same seeds: the median
seconds per quote, its ratio to best_of 1, and the chosen quotes' mean score by the model's
scorer (as a keep probability: what the blind reading measures by hand). The prompts are the
first words of held-out modern sayings, as in bench/reading.py. ``--temperatures`` adds rows
at best_of 1 for other temperatures (the decoding setting the scorer can compare cheaply;
the blind reading is the judge).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.reading import opening


def main() -> None:
    import quotegen

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--values", default="1,2,4,8")
    parser.add_argument("--temperatures", default="")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "bestof.json")
    args = parser.parse_args()
    rng = random.Random(5)
    modern = [s for s in common.held_out_quotes()["modern"] if len(s.split()) >= 5]
    prompts = [opening(s, rng) for s in rng.sample(modern, args.prompts)]
    engine = quotegen.get_model(args.model)
    engine.generate(["warm up"], engine.settings({"best_of": 2, "seed": 0}))
    rows = []
    runs = [(int(v), None) for v in args.values.split(",")]
    runs += [(1, float(t)) for t in args.temperatures.split(",") if t]
    for best_of, temperature in runs:
        seconds, kept = [], []
        for k, prompt in enumerate(prompts):
            given: dict[str, object] = {"best_of": best_of, "seed": 1000 + k}
            if temperature is not None:
                given["temperature"] = temperature
            settings = engine.settings(given)
            started = time.perf_counter()
            (result,) = engine.generate([prompt], settings)
            seconds.append(time.perf_counter() - started)
            (score,) = engine.score([result.text])
            kept.append(1 / (1 + math.exp(-score)))
        rows.append(
            {
                "best_of": best_of,
                "temperature": settings.temperature,
                "seconds_per_quote": round(statistics.median(seconds), 3),
                "mean_keep_probability": round(statistics.mean(kept), 3),
            }
        )
        common.log(f"best_of {best_of}: {rows[-1]}")
    base = rows[0]["seconds_per_quote"]
    for row in rows:
        row["time_ratio"] = round(row["seconds_per_quote"] / base, 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": engine.info.name, "rows": rows}, indent=1) + "\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
