"""One prompt, tokens per second: quotegen in every precision vs a per-call `pipeline(...)`.

    .venv/bin/python bench/single.py [--calls 5] [--model real|random|FOLDER]

Everything in one process with the models loaded once; each call generates exactly 32 new
tokens for one prompt with seed 2's sampling (top_p 0.9, top_k off, temperature 1). Sides:
the seed's pipeline; quotegen's float32 through transformers' own forward pass with oneDNN
linear layers (``float32_before``: the path every release before the lean forward took);
and quotegen as it loads now in float32, bfloat16, float16, int8 and int4. Calls alternate between
the sides so drift hits all of them; the median call is reported. Each quotegen side also
generates 16 prompts as one batch (``batch16_tok_s``, the better of two runs): a precision
that is quick for one prompt can be slow for batches (float16 on CPUs without fp16 units).
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

from quotegen.engine.generation import Engine
from quotegen.loading.model import LoadedModel, load_model, place
from quotegen.loading.quantization import linear_maker
from quotegen.loading.references import parse_model_ref
from quotegen.loading.speedups import replace_linears
from quotegen.settings import GenerationSettings


def float32_before(model: Path) -> LoadedModel:
    """The float32 path before the lean forward: transformers' forward, oneDNN linears."""
    loaded = load_model(parse_model_ref(str(model)), place("cpu", inference=False), optimize=False)
    replace_linears(loaded.model, linear_maker("float32"))
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_option(parser)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=common.NEW_TOKENS)
    args = parser.parse_args()
    model = common.bench_model(args.model)
    new = args.new_tokens

    pipe = common.seed_pipeline(model)
    settings = GenerationSettings(**common.quotegen_settings(new))
    ref = parse_model_ref(str(model))
    engines = {"float32_before": Engine(float32_before(model))}
    for name, options in common.CHOICES.items():
        engines[name] = Engine(load_model(ref, place("cpu", **options)))

    def ours(generator: Engine) -> Callable[[str], int]:
        def call(prompt: str) -> int:
            (result,) = generator.generate([prompt], settings)
            return result.completion_tokens

        return call

    def seed(prompt: str) -> int:
        common.seed_generate(pipe, prompt, new)
        return new  # min_new_tokens == max_new_tokens

    sides: dict[str, Callable[[str], int]] = {"pipeline": seed}
    sides.update({f"quotegen_{name}": ours(engine) for name, engine in engines.items()})
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
    batch = common.prompts(16)
    batch_rate: dict[str, float] = {}
    for name, engine in engines.items():
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            results = engine.generate(batch, settings)
            runs.append(time.perf_counter() - started)
        batch_rate[f"quotegen_{name}"] = sum(r.completion_tokens for r in results) / min(runs)
    common.report(
        "single",
        [
            {
                "side": name,
                "tok_s": rate[name],
                "median_call_s": common.median(seconds[name]),
                "vs_pipeline": rate[name] / rate["pipeline"],
                "vs_float32_before": rate[name] / rate["quotegen_float32_before"],
                "batch16_tok_s": batch_rate.get(name),
            }
            for name in sides
        ],
        {"new_tokens": new, "model": str(model), "samples": seconds},
    )


if __name__ == "__main__":
    main()
