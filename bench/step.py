"""Where one decode step's time goes: torch's profiler over single-prompt decode steps of the
default model, in each precision, its operations grouped by what they do.

    .venv/bin/python bench/step.py [--steps 32] [--threads 2]

The default model (quotegen-135m, prepared) is loaded through quotegen's own loading code in
bfloat16, int8 and int4; one prompt is prefilled, then ``--steps`` decode steps run through
the model's forward with its cache, as the engine runs them, and are profiled. Each torch
operation is put in a group (the 4-bit and 8-bit products, the bf16 products, the adapter's
side products, attention, norms, the cache, dtype conversions, the rest), and the table gives
each group's milliseconds per step, with the step's wall time and what Python adds (the wall
time less the operations' own time). JSON in bench/results/step.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common

#: Operation names (torch's profiler's keys) by the group they count in; first match wins.
GROUPS = (
    ("int4 products", ("_weight_int4pack_mm",)),
    ("int8 products", ("_weight_int8pack_mm",)),
    ("attention", ("scaled_dot_product", "_flash_attention", "_scaled_dot")),
    ("norms", ("rms_norm",)),
    ("cache", ("aten::cat",)),
    ("dtype conversions", ("aten::to", "aten::_to_copy", "aten::copy_")),
    ("bf16/float products", ("aten::linear", "aten::addmm", "aten::mm", "aten::matmul")),
    (
        "embedding, rotary, activation glue",
        ("aten::embedding", "aten::index", "aten::mul", "aten::add", "aten::silu", "aten::neg"),
    ),
)


def group_of(name: str) -> str:
    for group, keys in GROUPS:
        if any(key in name for key in keys):
            return group
    return "other operations"


def profile(precision: str, steps: int) -> dict[str, Any]:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from quotegen.loading.model import load_model, place
    from quotegen.loading.references import default_model_ref

    options = {"quantize": precision} if precision.startswith("int") else {"dtype": precision}
    loaded = load_model(default_model_ref(), place("cpu", **options))
    model = loaded.model
    ids = torch.tensor([loaded.tokenizer("The best way to")["input_ids"]])

    def decode(count: int) -> None:
        with torch.inference_mode():
            out = model(input_ids=ids, logits_to_keep=1)
            cache = out.past_key_values
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            for _ in range(count):
                out = model(input_ids=token, cache=cache, logits_to_keep=1)
                cache = out.past_key_values
                token = out.logits[:, -1].argmax(-1, keepdim=True)

    decode(4)  # warm up
    started = time.perf_counter()
    decode(steps)
    wall_ms = (time.perf_counter() - started) * 1000 / steps
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        decode(steps)
    groups: dict[str, float] = defaultdict(float)
    counted = 0.0
    calls = 0
    for event in prof.key_averages():  # self time: a call's children are not in it twice
        groups[group_of(event.key)] += event.self_cpu_time_total / 1000 / (steps + 1)
        counted += event.self_cpu_time_total / 1000 / (steps + 1)
        calls += event.count
    row: dict[str, Any] = {"precision": precision, "step_ms": round(wall_ms, 2)}
    row |= {group: round(ms, 2) for group, ms in sorted(groups.items(), key=lambda kv: -kv[1])}
    row["operations_per_step"] = round(calls / (steps + 1))
    row["python_and_dispatch_ms"] = round(max(wall_ms - counted, 0.0), 2)
    row["tok_s"] = round(1000 / wall_ms, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", default="bfloat16,int8,int4")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for precision in args.precisions.split(","):
        common.log(f"profiling {args.steps} decode steps in {precision}")
        rows.append(profile(precision, args.steps))
    for row in rows:
        print(f"\n{row['precision']}: {row['step_ms']} ms a step ({row['tok_s']} tok/s)")
        for key, value in row.items():
            if key not in ("precision", "step_ms", "tok_s"):
                print(f"  {key:36s} {value}")
    common.report("step", rows, {"steps": args.steps, "threads": args.threads})


if __name__ == "__main__":
    main()
