"""Start-up: `quotegen --help` vs `python -c "import typer"` (the floor for any Typer CLI).

    .venv/bin/python bench/startup.py [--runs 15]

Runs both commands alternately (so drift hits both), reports the median wall time of each and
the ratio. JSON in bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = Path(common.PYTHON).parent / "quotegen"  # the installed console script
    quotegen = [str(script)] if script.exists() else [common.PYTHON, "-m", "quotegen"]
    commands = {
        "quotegen --help": [*quotegen, "--help"],
        "import typer": [common.PYTHON, "-c", "import typer"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # warm the page cache
        common.run_timed(cmd)
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(common.run_timed(cmd))
    ours, floor = common.median(times["quotegen --help"]), common.median(times["import typer"])
    common.report(
        "startup",
        [
            {
                "quotegen_help_s": ours,
                "import_typer_s": floor,
                "ratio": ours / floor,
                "target": "<= 2.5",
                "runs": args.runs,
            }
        ],
        {"samples": times},
    )


if __name__ == "__main__":
    main()
