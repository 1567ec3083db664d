"""One prompt, tokens per second: quotegen (fp32 and int8) vs a per-call `pipeline(...)`.

    .venv/bin/python bench/single.py [--calls 5]

Everything in one process with the models loaded once; each call generates exactly 32 new
tokens for one prompt with seed 2's sampling (top_p 0.9, top_k off, temperature 1). Calls
alternate between the three so drift hits all of them; the median call is reported.
JSON in bench/results/single.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common

from quotegen.generation import Engine
from quotegen.model import load_model
from quotegen.references import parse_model_ref
from quotegen.settings import GenerationSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model directory (default: 124M random GPT-2)")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=common.NEW_TOKENS)
    args = parser.parse_args()
    model = args.model or common.gpt2_small()
    new = args.new_tokens

    pipe = common.seed_pipeline(model)
    settings = GenerationSettings(**common.quotegen_settings(new))
    ref = parse_model_ref(str(model))
    fp32 = Engine(load_model(ref, device="cpu"))
    int8 = Engine(load_model(ref, device="cpu", quantize="int8"))

    def ours(generator: Engine) -> Callable[[str], int]:
        def call(prompt: str) -> int:
            (result,) = generator.generate([prompt], settings)
            return result.completion_tokens

        return call

    def seed(prompt: str) -> int:
        common.seed_generate(pipe, prompt, new)
        return new  # min_new_tokens == max_new_tokens

    sides: dict[str, Callable[[str], int]] = {
        "pipeline": seed,
        "quotegen_fp32": ours(fp32),
        "quotegen_int8": ours(int8),
    }
    for call in sides.values():  # warm-up
        call("warm up")
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for i, prompt in enumerate(common.prompts(args.calls)):
        for name, call in sides.items():
            started = time.perf_counter()
            tokens = call(prompt)
            seconds[name].append(time.perf_counter() - started)
            if tokens != new:
                raise SystemExit(f"{name} made {tokens} tokens on call {i}, not {new}")
    rate = {name: new / common.median(times) for name, times in seconds.items()}
    common.report(
        "single",
        [
            {
                "side": name,
                "tok_s": rate[name],
                "median_call_s": common.median(seconds[name]),
                "vs_pipeline": rate[name] / rate["pipeline"],
                "target": {"quotegen_fp32": ">= 1.2", "quotegen_int8": ">= 2.3"}.get(name),
            }
            for name in sides
        ],
        {"new_tokens": new, "model": str(model), "samples": seconds},
    )


if __name__ == "__main__":
    main()
