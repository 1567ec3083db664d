"""Start-up, three ways, each against its floor:

- `quotegen --help` vs `python -c "import typer"` (the floor for any Typer CLI);
- the main job cold, `quotegen generate "life is"` with the bundled model (import, load, one
  quote), vs `python -c "import torch, transformers"` (the floor for any transformers tool);
- client mode, `quotegen generate --server URL "life is"` against a running `quotegen serve`
  (the bundled model), vs `python -c "import typer"`: the cost of one call in a shell loop.

    .venv/bin/python bench/startup.py [--runs 15]

Runs each pair alternately (so drift hits both), reports the median wall time of each and the
ratios. JSON in bench/results/startup.json.
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
    port = common.free_port()
    server = common.Server(
        "quotegen", [*quotegen, "serve", "--port", str(port)], port, common.bench_env()
    )
    server.wait_ready("/health")
    generate = [*quotegen, "generate", "-q", "--seed", "1"]
    commands = {
        "quotegen --help": [*quotegen, "--help"],
        "import typer": [common.PYTHON, "-c", "import typer"],
        "quotegen generate": [*generate, "life is"],
        "import torch, transformers": [common.PYTHON, "-c", "import torch, transformers"],
        "quotegen generate --server": [*generate, "--server", server.url, "life is"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for cmd in commands.values():  # warm the page cache
            common.run_timed(cmd)
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(common.run_timed(cmd))
    finally:
        server.stop()
    median = {name: common.median(values) for name, values in times.items()}
    common.report(
        "startup",
        [
            {
                "quotegen_help_s": median["quotegen --help"],
                "import_typer_s": median["import typer"],
                "ratio": median["quotegen --help"] / median["import typer"],
                "target": "<= 2.5",
                "generate_cold_s": median["quotegen generate"],
                "import_torch_transformers_s": median["import torch, transformers"],
                "cold_ratio": median["quotegen generate"] / median["import torch, transformers"],
                "cold_target": "<= 1.5",
                "client_s": median["quotegen generate --server"],
                "client_ratio": median["quotegen generate --server"] / median["import typer"],
                "client_target": "<= 5",
                "runs": args.runs,
            }
        ],
        {"samples": times},
    )


if __name__ == "__main__":
    main()
