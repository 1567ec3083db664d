"""Run every performance benchmark, then print one table of the targets and their ratios.

    .venv/bin/python bench/all.py            # the real model; about 40 minutes on 2 CPU cores
    .venv/bin/python bench/all.py --quick    # a smoke run of every script on the random GPT-2

The full run measures SmolLM2-135M-Instruct (and the default model for quantization's
quality), and llama.cpp beside quotegen when ``bash bench/setup-llamacpp.sh`` has installed
it. Each script also runs alone (see its docstring) and writes bench/results/<name>.json;
this one adds bench/results/summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

QUICK = {
    "startup": ["--runs", "3"],
    "single": ["--calls", "1", "--new-tokens", "8", "--model", "random"],
    "stdin": ["--prompts", "8", "--new-tokens", "8", "--model", "random"],
    "server": ["--quick", "--new-tokens", "8", "--model", "random"],
    "quantize": ["--texts", "40", "--model", "random"],
    "scaleout": ["--prompts", "16", "--batch-size", "4"],
    # The real default's footprint and a busy machine: no quick form (they are the model).
    "footprint": None,
    "busy": None,
}


def run(script: str, args: list[str] | None) -> dict[str, Any]:
    """Run one benchmark script (``args`` None: reuse its last results) and load its JSON."""
    if args is not None:
        common.log(f"running bench/{script}.py {' '.join(args)}")
        command = [common.PYTHON, str(common.ROOT / "bench" / f"{script}.py"), *args]
        subprocess.run(command, check=True)
    data: dict[str, Any] = json.loads((common.RESULTS / f"{script}.json").read_text())
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks, not numbers")
    parser.add_argument(
        "--summary-only", action="store_true", help="summarise the last results, run nothing"
    )
    args = parser.parse_args()

    def args_for(script: str) -> list[str] | None:
        if args.summary_only:
            return None
        return QUICK[script] if args.quick else []

    def measured(script: str) -> dict[str, Any] | None:
        """A real-model script's results (None in a quick run, or not yet measured)."""
        if args.quick or (args.summary_only and not (common.RESULTS / f"{script}.json").exists()):
            return None
        return run(script, args_for(script))

    startup = run("startup", args_for("startup"))["rows"][0]
    single = {r["side"]: r for r in run("single", args_for("single"))["rows"]}
    quantize = run("quantize", args_for("quantize"))["rows"]
    stdin = run("stdin", args_for("stdin"))["rows"][0]
    server_rows = run("server", args_for("server"))["rows"]
    run("scaleout", args_for("scaleout"))  # reported as measured: no target on one machine
    llamacpp = None
    if not args.quick and (args.summary_only or llamacpp_installed()):
        llamacpp = {r["side"]: r for r in run("llamacpp", args_for("llamacpp"))["rows"]}

    # The fastest choice that costs at most 1 % bits per byte on every model measured, and is
    # not slower than float32 for a batch of 16 (float16 can be quick alone, slow batched).
    kept = {q["choice"] for q in quantize} - {q["choice"] for q in quantize if q["change_pct"] > 1}
    floor = single["quotegen_float32"].get("batch16_tok_s") or 0.0
    kept = {c for c in kept if (single[f"quotegen_{c}"].get("batch16_tok_s") or floor) >= floor}
    best = max(kept, key=lambda choice: single[f"quotegen_{choice}"]["tok_s"])
    best_single = single[f"quotegen_{best}"]

    # (target, measured ratio, goal): goals are "<= x" or ">= x".
    checks: list[tuple[str, float, str]] = [
        ("--help vs import typer (x)", startup["ratio"], "<= 2.5"),
        ("generate cold vs import torch, transformers (x)", startup["cold_ratio"], "<= 2.5"),
        ("generate --server vs import typer (x)", startup["client_ratio"], "<= 5"),
        *((f"bits per byte, {q['model']} {q['choice']} vs float32 (%)", q["change_pct"], "<= 1")
          for q in quantize if q["choice"] != "float32"),
        (f"single prompt tok/s, best within 1 % ({best}) vs float32 before (x)",
         best_single["vs_float32_before"], ">= 1.8"),
        (f"single prompt tok/s, {best} vs seed pipeline (x)", best_single["vs_pipeline"], ">= 1.2"),
        ("stdin prompts vs seed loop (x faster)", stdin["speedup"], ">= 5"),
    ]  # fmt: skip
    if llamacpp is not None:
        ours = llamacpp[f"quotegen_{best}"]
        checks += [
            (f"single prompt tok/s, {best} vs llama.cpp (x)", ours["tok_s_vs_llamacpp"], ">= 0.5"),
            (f"16 prompts' time, {best} batched vs llama.cpp one by one (x)",
             ours["batch_time_vs_llamacpp"], "<= 0.5"),
            (f"peak memory, {best} vs llama.cpp (x, reported)", ours["rss_vs_llamacpp"], ">= 0"),
        ]  # fmt: skip
    for variant, label in (("default", "server"), ("int4", "server --quantize int4")):
        server = {r["clients"]: r for r in server_rows if r["quotegen"] == variant}
        if not server:
            continue
        first, busy, last = server[min(server)], server.get(16), server[max(server)]
        if busy is not None:
            checks.append((f"{label} c=16 req/s vs seed (x)", busy["req_s_ratio"], ">= 8"))
            checks.append((f"{label} c=16 p99 vs seed (x)", busy["p99_ratio"], "<= 0.25"))
        checks.append((f"{label} c={min(server)} p50 vs seed (x)", first["p50_ratio"], "<= 1.0"))
        checks.append(
            (f"{label} RSS after c={max(server)} vs seed (x)", last["rss_after_ratio"], "<= 1.3")
        )
    footprint = measured("footprint")
    if footprint is not None:
        found = {r["measure"]: r for r in footprint["rows"]}
        first = next(r for name, r in found.items() if name.startswith("first use"))
        checks += [
            ("cache after first use (MB)",
             found["cache after first use (MB)"]["size_mb"], "<= 300"),
            ("peak memory, cold generate, default (MB)",
             found["cold generate, default"]["peak_mb"], "<= 600"),
            ("peak memory, cold generate --quantize int4 (MB)",
             found["cold generate, int4"]["peak_mb"], "<= 400"),
            ("peak memory, first use (MB)", first["peak_mb"], "<= 800"),
            (f"{first['measure']} (s)", first["seconds"], "<= 15"),
        ]  # fmt: skip
        if "llama.cpp, same GGUF" in found:
            checks.append(("peak memory, llama.cpp same GGUF (MB, reported)",
                           found["llama.cpp, same GGUF"]["peak_mb"], ">= 0"))  # fmt: skip
    busy = measured("busy")
    if busy is not None:
        for row in busy["rows"]:
            if row["threads"] == "quotegen":
                checks.append((f"{row['job']}, one core busy vs quiet (x)",
                               row["busy_vs_quiet"], "<= 1.3"))  # fmt: skip
    rows = [
        {
            "target": target,
            "measured": round(value, 3),
            "goal": goal,
            "met": common.meets(value, goal),
        }
        for target, value, goal in checks
    ]
    common.report("summary", rows, {"quick": args.quick, "best_within_1pct": best})


def llamacpp_installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        common.log("llama.cpp not installed (bash bench/setup-llamacpp.sh): skipping its rows")
        return False
    return True


if __name__ == "__main__":
    main()
