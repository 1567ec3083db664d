"""quotegen next to llama.cpp on the same weights: the pinned SmolLM2-135M-Instruct Q4_1 GGUF.

    bash bench/setup-llamacpp.sh          # once: builds llama-cpp-python (bench-only)
    .venv/bin/python bench/llamacpp.py    # about 4 minutes on 2 CPU cores

llama.cpp (through ``llama-cpp-python``) runs the GGUF file; quotegen runs the folder it
converts that file into, in each precision it offers. Each side runs in a process of its own
(so its peak memory is its own), with the same thread count (``--threads``, default 2) and
the same sampling (temperature 1, top-p 0.9, no top-k), and measures:

- one prompt, ``--new-tokens`` (64) forced tokens: tokens per second over the whole call
  (prompt included) and the time to the first token (median of ``--calls``);
- ``--prompts`` (16) prompts of 32 forced tokens each: llama.cpp one after another (it serves
  one sequence at a time), quotegen as one batch; the total time;
- peak resident memory (VmHWM) of the process.

quotegen is never given llama-cpp-python: it is a bench-only requirement. JSON in
bench/results/llamacpp.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common

QUOTEGEN_SIDES = {f"quotegen_{name}": options for name, options in common.CHOICES.items()}
BATCH_TOKENS = 32


def peak_rss_mb() -> float:
    import re

    text = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def run_llamacpp(args: argparse.Namespace) -> dict[str, Any]:
    import llama_cpp

    started = time.perf_counter()
    llm = llama_cpp.Llama(
        str(common.real_gguf()), n_threads=args.threads, n_ctx=512, n_batch=512, verbose=False
    )
    load = time.perf_counter() - started

    def call(prompt: str, new: int) -> tuple[float, float]:
        tokens = llm.tokenize(prompt.encode(), add_bos=False)
        begun = time.perf_counter()
        first = None
        # generate() never stops on its own (an end-of-text token is just another token),
        # so every call makes `new` tokens.
        tokens_out = llm.generate(tokens, temp=1.0, top_p=0.9, top_k=0, min_p=0.0, reset=True)
        for made, _token in enumerate(tokens_out, start=1):
            if first is None:
                first = time.perf_counter() - begun
            if made == new:
                break
        return time.perf_counter() - begun, first or 0.0

    call("warm up", 4)
    singles = [call(p, args.new_tokens) for p in common.prompts(args.calls)]
    begun = time.perf_counter()
    for prompt in common.prompts(args.prompts):
        call(prompt, BATCH_TOKENS)
    batch = time.perf_counter() - begun
    return _row("llamacpp", load, singles, batch, args)


def run_quotegen(side: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    from quotegen.engine.generation import Engine
    from quotegen.loading.model import load_model, place
    from quotegen.loading.references import parse_model_ref
    from quotegen.settings import GenerationSettings

    model = common.real_model()
    started = time.perf_counter()
    engine = Engine(load_model(parse_model_ref(str(model)), place("cpu", **QUOTEGEN_SIDES[side])))
    load = time.perf_counter() - started

    def settings(new: int) -> GenerationSettings:
        return GenerationSettings(**common.quotegen_settings(new), seed=1)

    def call(prompt: str, new: int) -> tuple[float, float]:
        begun = time.perf_counter()
        first = None
        stream = engine.stream(prompt, settings(new))
        for _ in stream:
            if first is None:
                first = time.perf_counter() - begun
        if stream.result is None or stream.result.completion_tokens != new:
            raise SystemExit(f"{side}: the call did not make {new} tokens")
        return time.perf_counter() - begun, first or 0.0

    call("warm up", 4)
    singles = [call(p, args.new_tokens) for p in common.prompts(args.calls)]
    begun = time.perf_counter()
    results = engine.generate(common.prompts(args.prompts), settings(BATCH_TOKENS))
    batch = time.perf_counter() - begun
    if any(r.completion_tokens != BATCH_TOKENS for r in results):
        raise SystemExit(f"{side}: a batch row did not make {BATCH_TOKENS} tokens")
    return _row(side, load, singles, batch, args)


def _row(
    side: str, load: float, singles: list[tuple[float, float]], batch: float, ns: Any
) -> dict[str, Any]:
    seconds = common.median([s for s, _ in singles])
    return {
        "side": side,
        "load_s": round(load, 2),
        "single_tok_s": ns.new_tokens / seconds,
        "ttft_ms": 1000 * common.median([f for _, f in singles]),
        f"{ns.prompts}_prompts_s": batch,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=3, help="single-prompt calls per side")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--sides", default="llamacpp," + ",".join(QUOTEGEN_SIDES))
    parser.add_argument("--side", help=argparse.SUPPRESS)  # a child process: one side
    args = parser.parse_args()
    if args.side:
        row = run_llamacpp(args) if args.side == "llamacpp" else run_quotegen(args.side, args)
        print(json.dumps(row))
        return

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise SystemExit(
            "llama-cpp-python is not installed: run bash bench/setup-llamacpp.sh first"
        ) from None
    common.real_model(), common.real_gguf()  # fetched and converted before any timing
    rows = []
    for side in args.sides.split(","):
        common.log(f"running {side}")
        child = [common.PYTHON, __file__, "--side", side, "--threads", str(args.threads),
                 "--calls", str(args.calls), "--new-tokens", str(args.new_tokens),
                 "--prompts", str(args.prompts)]  # fmt: skip
        out = subprocess.run(
            child, check=True, capture_output=True, text=True, env=common.bench_env()
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    reference = next((r for r in rows if r["side"] == "llamacpp"), None)
    batch_key = f"{args.prompts}_prompts_s"
    for row in rows:
        if reference is not None:
            row["tok_s_vs_llamacpp"] = row["single_tok_s"] / reference["single_tok_s"]
            row["batch_time_vs_llamacpp"] = row[batch_key] / reference[batch_key]
            row["rss_vs_llamacpp"] = row["peak_rss_mb"] / reference["peak_rss_mb"]
    common.report(
        "llamacpp",
        rows,
        {"threads": args.threads, "new_tokens": args.new_tokens, "gguf": str(common.real_gguf())},
    )


if __name__ == "__main__":
    main()
