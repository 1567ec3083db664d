"""256 prompts on stdin: `quotegen generate` vs a loop calling seed 2's pipeline per prompt.

    .venv/bin/python bench/stdin.py [--prompts 256]     # ~7 min, mostly the seed loop

Both are whole processes, timed from start to exit (model loading included), reading the same
prompts on stdin and writing one line per prompt; exactly 32 new tokens each, seed 2's
sampling (top_p 0.9, top_k off, temperature 1). JSON in bench/results/stdin.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common


def timed_lines(cmd: list[str], stdin: str) -> tuple[float, int]:
    started = time.perf_counter()
    out = subprocess.run(
        cmd,
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
        env=common.bench_env(),
        cwd=common.ROOT,
    ).stdout
    return time.perf_counter() - started, out.count("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_option(parser)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=common.NEW_TOKENS)
    parser.add_argument("--quotegen-args", default="", help="extra `quotegen generate` flags")
    args = parser.parse_args()
    model = common.bench_model(args.model)
    stdin = "\n".join(common.prompts(args.prompts)) + "\n"

    quotegen = [
        common.PYTHON, "-m", "quotegen", "generate", "--model", str(model), "--device", "cpu",
        "--quiet", *common.quotegen_cli_flags(args.new_tokens), *args.quotegen_args.split(),
    ]  # fmt: skip
    seed = [common.PYTHON, str(common.ROOT / "bench" / "seed_loop.py"), str(model),
            str(args.new_tokens)]  # fmt: skip
    common.log(f"quotegen generate: {args.prompts} prompts on stdin")
    ours, our_lines = timed_lines(quotegen, stdin)
    common.log(f"seed loop: {args.prompts} prompts, one pipeline call each")
    theirs, their_lines = timed_lines(seed, stdin)
    if our_lines != args.prompts or their_lines != args.prompts:
        raise SystemExit(f"expected {args.prompts} lines, got {our_lines} and {their_lines}")
    tokens = args.prompts * args.new_tokens
    common.report(
        "stdin",
        [
            {
                "prompts": args.prompts,
                "quotegen_s": ours,
                "seed_loop_s": theirs,
                "speedup": theirs / ours,
                "quotegen_tok_s": tokens / ours,
                "seed_tok_s": tokens / theirs,
                "target": ">= 5",
            }
        ],
        {"new_tokens": args.new_tokens, "model": str(model), "quotegen_args": args.quotegen_args},
    )


if __name__ == "__main__":
    main()
