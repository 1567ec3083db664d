"""`quotegen serve` vs a replica of seed 2's server, at 1, 4, 16 and 32 concurrent clients.

    .venv/bin/python bench/server.py                  # the real model, 32 new tokens
    .venv/bin/python bench/server.py --quick          # a smoke run (tiny counts)

Both servers get the same model, the same route and query
(``POST /generate_quote?prompt=...&max_new_tokens=32&min_new_tokens=32``: seed 2's sampling,
top_p 0.9, top_k off, temperature 1, exactly 32 new tokens) and a bounded number of requests
from closed-loop clients on loopback; they run one after the other, never side by side.
Reported per concurrency: requests/s, p50/p99 latency, errors, peak RSS, and quotegen's
ratios to the seed server, for `quotegen serve` as it comes (``--dtype auto``) and with
`--quantize int4`. The model: SmolLM2-135M-Instruct (``--model``, see bench/common.py).
JSON in bench/results/server.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

LEVELS = (1, 4, 16, 32)


def start(kind: str, model: Path, new_tokens: int, extra: list[str]) -> common.Server:
    port = common.free_port()
    env = common.bench_env()
    if kind == "seed":
        env.update(SEED_MODEL=str(model), SEED_NEW_TOKENS=str(new_tokens))
        cmd = [
            common.PYTHON, "-m", "uvicorn", "--app-dir", str(common.ROOT / "bench"),
            "seed_server:app", "--port", str(port), "--workers", "1", "--log-level", "warning",
        ]  # fmt: skip
        server = common.Server("seed", cmd, port, env)
        server.wait_ready("/")
    else:
        cmd = [
            common.PYTHON, "-m", "quotegen", "serve", "--model", str(model),
            "--port", str(port), "--device", "cpu", "--log-level", "warning", *extra,
        ]  # fmt: skip
        server = common.Server("quotegen", cmd, port, env)
        server.wait_ready("/health")
    return server


def load(server: common.Server, concurrency: int, requests: int, new_tokens: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    peak = [server.rss_mb()]
    lock = threading.Lock()
    done = threading.Event()
    todo = iter(range(requests))
    texts = common.prompts(requests)

    def sample_memory() -> None:
        while not done.wait(0.2):
            peak.append(server.rss_mb())

    def client() -> None:
        with httpx.Client(timeout=600) as http:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                params = {
                    "prompt": texts[i],
                    "max_new_tokens": new_tokens,
                    "min_new_tokens": new_tokens,
                }
                started = time.perf_counter()
                try:
                    r = http.post(f"{server.url}/generate_quote", params=params)
                    ok = r.status_code == 200 and isinstance(r.json(), str)
                    outcome = "" if ok else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with lock:
                    if outcome:
                        errors.append(outcome)
                    else:
                        latencies.append(time.perf_counter() - started)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    return {
        "req_per_s": len(latencies) / wall,
        "p50_s": common.percentile(latencies, 0.5),
        "p99_s": common.percentile(latencies, 0.99),
        "errors": len(errors),
        "requests": requests,
        "peak_rss_mb": max(peak),
        "rss_after_mb": server.rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_model_option(parser)
    parser.add_argument("--new-tokens", type=int, default=common.NEW_TOKENS)
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--rounds", type=int, default=2, help="requests per client per level")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, levels 1 and 4")
    parser.add_argument(
        "--no-int4", action="store_true", help="skip the `quotegen serve --quantize int4` run"
    )
    args = parser.parse_args()
    if args.quick:
        args.levels, args.rounds = [1, 4], 1
    model = common.bench_model(args.model)

    variants = {"seed": [], "quotegen": []} | (
        {} if args.no_int4 else {"int4": ["--quantize", "int4"]}
    )
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for name, flags in variants.items():
        kind = "seed" if name == "seed" else "quotegen"
        common.log(f"starting the {name} server")
        server = start(kind, model, args.new_tokens, flags)
        try:
            load(server, 1, 1, args.new_tokens)  # warm-up, not measured
            results[name] = {}
            for level in args.levels:
                count = max(level * args.rounds, 2)
                common.log(f"{name}: {count} requests at concurrency {level}")
                results[name][level] = load(server, level, count, args.new_tokens)
        finally:
            server.stop()

    rows = []
    for name in (n for n in variants if n != "seed"):
        for level in args.levels:
            seed, ours = results["seed"][level], results[name][level]
            rows.append(
                {
                    "quotegen": "default" if name == "quotegen" else name,
                    "clients": level,
                    "seed_req_s": seed["req_per_s"],
                    "quotegen_req_s": ours["req_per_s"],
                    "req_s_ratio": ours["req_per_s"] / seed["req_per_s"],
                    "seed_p50_s": seed["p50_s"],
                    "quotegen_p50_s": ours["p50_s"],
                    "p50_ratio": ours["p50_s"] / seed["p50_s"],
                    "seed_p99_s": seed["p99_s"],
                    "quotegen_p99_s": ours["p99_s"],
                    "p99_ratio": ours["p99_s"] / seed["p99_s"],
                    "errors": f"{seed['errors']}/{ours['errors']}",
                    "seed_peak_mb": seed["peak_rss_mb"],
                    "quotegen_peak_mb": ours["peak_rss_mb"],
                    "rss_after_ratio": ours["rss_after_mb"] / seed["rss_after_mb"],
                }
            )
    common.report(
        "server", rows, {"new_tokens": args.new_tokens, "model": str(model), "raw": results}
    )


if __name__ == "__main__":
    main()
