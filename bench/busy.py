"""A busy machine: how long quotegen takes when another process holds one core, against a
quiet machine, for each way of choosing the thread count.

    .venv/bin/python bench/busy.py [--runs 3]

Two jobs: a cold ``quotegen generate "life is"`` (import, load, one quote), and 16 prompts on
stdin (``quotegen generate -``, one batch). Each runs quiet, then beside a process spinning on
one core, with

- ``quotegen``: quotegen's own choice (the cores other processes leave free,
  ``quotegen/engine/threads.py``);
- ``all cores``: ``QUOTEGEN_THREADS`` = every core (torch's default, quotegen before);
- ``all cores, passive``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once
  instead of spinning at a barrier);
- ``one``: ``QUOTEGEN_THREADS=1``.

Reports the median seconds of each and busy / quiet. JSON in bench/results/busy.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SPIN = "while True: pass"


def choices(cores: int) -> dict[str, dict[str, str]]:
    return {
        "quotegen": {},
        "all cores": {"QUOTEGEN_THREADS": str(cores)},
        "all cores, passive": {"QUOTEGEN_THREADS": str(cores), "OMP_WAIT_POLICY": "PASSIVE"},
        "one": {"QUOTEGEN_THREADS": "1"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=None, help="any --model reference (the default)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    script = Path(common.PYTHON).parent / "quotegen"
    quotegen = [str(script)] if script.exists() else [common.PYTHON, "-m", "quotegen"]
    model = ["--model", args.model] if args.model else []
    base = [*quotegen, "generate", "-q", "--seed", "1", "--best-of", "1", *model]
    prompts = "".join(f"{p}\n" for p in (common.PROMPTS * 4)[:16])
    jobs = {
        "generate one prompt": ([*base, "life is"], None),
        "16 prompts on stdin": ([*base, "-"], prompts),
    }
    rows = []
    env = common.bench_env()
    for name in ("OMP_NUM_THREADS", "QUOTEGEN_THREADS", "OMP_WAIT_POLICY"):
        env.pop(name, None)
    for job, (cmd, stdin) in jobs.items():
        common.run_timed(cmd, stdin=stdin, env=env)  # warm the page cache
        for choice, extra in choices(cores).items():
            times = {}
            for state in ("quiet", "busy"):
                spinner = None
                if state == "busy":
                    spinner = subprocess.Popen([common.PYTHON, "-c", SPIN])
                try:
                    runs = [
                        common.run_timed(cmd, stdin=stdin, env={**env, **extra})
                        for _ in range(args.runs)
                    ]
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
                times[state] = common.median(runs)
            rows.append(
                {
                    "job": job,
                    "threads": choice,
                    "quiet_s": times["quiet"],
                    "busy_s": times["busy"],
                    "busy_vs_quiet": times["busy"] / times["quiet"],
                }
            )
            common.log(f"{job}, {choice}: {times}")
    common.report("busy", rows, {"cores": cores, "runs": args.runs})


if __name__ == "__main__":
    main()
