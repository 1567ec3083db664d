"""`quotegen batch` on a prompts file three ways: here, on a local Ray with 1 replica, and on a
local Ray with 2 replicas (Ray Data actor pools).

    .venv/bin/python bench/scaleout.py                 # 2,000 prompts, the bundled model
    .venv/bin/python bench/scaleout.py --prompts 40    # a smoke run

Each run is a whole process (start-up, model loading, Ray start-up included), timed from start
to exit; rows per second = input lines / seconds. The rows that differ from the local run's
(timings aside) are counted: a replica runs torch on one thread and the local run on every
core, and in bfloat16 a sampled token can flip at a near-tie between the two (2 rows of 2,000
in the run of docs/performance.md; float32 matched). On one machine Ray adds its start-up and
scheduling and the replicas share the same cores: the point is that the same command scales
out, not that 2 cores go faster.
JSON in bench/results/scaleout.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common


def run(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=common.bench_env(), cwd=common.ROOT)
    return time.perf_counter() - started


def rows(path: Path) -> list[dict[str, object]]:
    found = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    for row in found:
        row.pop("seconds", None)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="quotegen-mini")
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    source = folder / "prompts.txt"
    source.write_text("\n".join(common.prompts(args.prompts)) + "\n", "utf-8")
    base = [
        common.PYTHON, "-m", "quotegen", "batch", str(source), "--model", args.model,
        "--seed", "1", "-b", str(args.batch_size), "-q",
    ]  # fmt: skip
    ways = {
        "local": [],
        "ray, 1 replica": ["--ray", "local", "--replicas", "1"],
        "ray, 2 replicas": ["--ray", "local", "--replicas", "2"],
    }
    seconds: dict[str, float] = {}
    outputs: dict[str, Path] = {}
    for name, extra in ways.items():
        out = folder / f"{name.replace(' ', '_').replace(',', '')}.jsonl"
        common.log(f"quotegen batch, {name}: {args.prompts} prompts")
        seconds[name] = run([*base, "-o", str(out), *extra])
        outputs[name] = out
    reference = rows(outputs["local"])
    differing = {
        name: sum(ours != theirs for ours, theirs in zip(rows(path), reference, strict=True))
        for name, path in outputs.items()
    }
    local_rate = args.prompts / seconds["local"]
    common.report(
        "scaleout",
        [
            {
                "way": name,
                "prompts": args.prompts,
                "seconds": round(seconds[name], 1),
                "rows_per_s": round(args.prompts / seconds[name], 2),
                "vs_local": round(args.prompts / seconds[name] / local_rate, 3),
                "rows_differing_from_local": differing[name],
            }
            for name in ways
        ],
        {"model": args.model, "batch_size": args.batch_size},
    )
    for name, path in outputs.items():
        for i, (ours, theirs) in enumerate(zip(rows(path), reference, strict=True)):
            if ours != theirs:
                fields = sorted(k for k in ours if ours[k] != theirs.get(k))
                common.log(f"{name}: row {i} differs from local in {', '.join(fields)}")


if __name__ == "__main__":
    main()
