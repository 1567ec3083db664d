"""Load and fault run against a real `quotegen serve` on loopback (bounded, stops by itself).

    .venv/bin/python bench/load.py                      # tiny model built on the spot
    .venv/bin/python bench/load.py --model quotegen-mini --requests 2000 --concurrency 32

1. N requests at C concurrent clients: every one must be answered 200 or an explicit
   503/429 (none lost); the server's RSS is sampled before, during and after.
2. Clients that hang up mid-stream must free their slots: afterwards the queue is empty and
   a new request is answered promptly.
3. SIGTERM during load: in-flight requests finish, the process exits 0.

Prints a JSON report (also bench/results/load.json); exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The same real-server helpers and tiny model the test suite uses.
from tests.helpers.live import start_server, stop_server  # noqa: E402
from tests.helpers.modelfactory import build_tiny_gpt2  # noqa: E402


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else float("nan")


def load(url: str, pid: int, requests: int, concurrency: int) -> dict[str, object]:
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    samples: list[float] = []
    done = threading.Event()

    def sample_memory() -> None:
        while not done.wait(0.5):
            samples.append(rss_mb(pid))

    def one(i: int) -> None:
        try:
            with httpx.Client(timeout=120) as client:
                r = client.post(f"{url}/generate", json={"text": f"quote {i % 97} is"})
                key = str(r.status_code)
        except httpx.HTTPError as exc:
            key = f"lost:{type(exc).__name__}"
        with lock:
            statuses[key] = statuses.get(key, 0) + 1

    before = rss_mb(pid)
    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    done.set()
    after = rss_mb(pid)
    lost = sum(v for k, v in statuses.items() if k.startswith("lost"))
    unexplained = sum(v for k, v in statuses.items() if k not in {"200", "503", "429"})
    return {
        "requests": requests,
        "concurrency": concurrency,
        "statuses": statuses,
        "lost": lost,
        "ok": unexplained == 0,
        "seconds": round(seconds, 1),
        "requests_per_second": round(requests / seconds, 1),
        "rss_mb_before": round(before, 1),
        "rss_mb_peak": round(max(samples or [after]), 1),
        "rss_mb_after": round(after, 1),
    }


def disconnects(url: str, streams: int) -> dict[str, object]:
    """Open streams, read one event each, hang up; the server must let the work go."""
    for _ in range(streams):
        with httpx.stream(
            "POST",
            f"{url}/v1/generate/stream",
            json={"prompt": "x", "settings": {"max_new_tokens": 2000, "stop": []}},
            timeout=30,
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    break
    time.sleep(1.0)
    metrics = httpx.get(f"{url}/metrics").text
    depth = float(re.search(r"^quotegen_queue_depth ([\d.e+]+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    started = time.perf_counter()
    r = httpx.post(f"{url}/generate", json={"text": "after", "max_new_tokens": 8}, timeout=30)
    return {
        "streams_dropped": streams,
        "queue_depth_after": depth,
        "next_request_status": r.status_code,
        "next_request_seconds": round(time.perf_counter() - started, 2),
        "ok": depth == 0 and r.status_code == 200 and time.perf_counter() - started < 10,
    }


def sigterm_under_load(model: str, concurrency: int) -> dict[str, object]:
    server = start_server(Path(model), "--drain-timeout", "60", "--log-level", "warning")
    url = server.url
    results: list[str] = []

    def one(_: int) -> None:
        try:
            r = httpx.post(
                f"{url}/generate",
                json={"text": "x", "max_new_tokens": 60, "min_new_tokens": 60},
                timeout=120,
            )
            results.append(str(r.status_code))
        except httpx.ConnectError:
            results.append("refused-after-stop")
        except httpx.HTTPError as exc:
            results.append(f"lost:{type(exc).__name__}")

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(one, i) for i in range(concurrency)]
        time.sleep(0.5)
        code, err = stop_server(server)
        concurrent.futures.wait(futures)
    counts = {k: results.count(k) for k in set(results)}
    return {
        "in_flight": concurrency,
        "answers": counts,
        "exit_code": code,
        "ok": code == 0
        and not any(k.startswith("lost") for k in counts)
        and "Traceback" not in err,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="Model to serve [default: a tiny GPT-2 built now]")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    model = args.model
    if model is None:
        model = str(build_tiny_gpt2(Path(tempfile.mkdtemp()) / "tiny"))

    server = start_server(Path(model), "--log-level", "warning")
    try:
        report: dict[str, object] = {
            "model": model,
            "load": load(server.url, server.process.pid, args.requests, args.concurrency),
        }
        report["disconnects"] = disconnects(server.url, 8)
    finally:
        code, err = stop_server(server)
    report["clean_exit"] = code == 0 and "Traceback" not in err
    report["sigterm_under_load"] = sigterm_under_load(model, args.concurrency)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    checks = [
        report["load"]["ok"],
        report["disconnects"]["ok"],
        report["clean_exit"],  # type: ignore[index]
        report["sigterm_under_load"]["ok"],
    ]  # type: ignore[index]
    sys.exit(0 if all(checks) else 1)


if __name__ == "__main__":
    main()
