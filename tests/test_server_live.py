"""A real ``quotegen serve`` subprocess on loopback with the tiny real model."""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.live import LiveServer, free_port, serving, start_server, stop_server


@pytest.fixture(scope="module")
def live(tiny_model_dir: Path) -> Iterator[LiveServer]:
    with serving(tiny_model_dir, "--max-wait-ms", "100", "--max-batch-size", "32") as server:
        yield server


def test_live_seed_routes_exact_shapes(live: LiveServer) -> None:
    seed1 = httpx.post(f"{live.url}/generate", json={"text": "life is"}, timeout=30)
    assert seed1.status_code == 200
    assert list(seed1.json()) == ["generated_text"]
    assert seed1.json()["generated_text"].startswith("life is")
    seed2 = httpx.post(f"{live.url}/generate_quote", params={"prompt": "life is"}, timeout=30)
    assert seed2.status_code == 200
    assert isinstance(seed2.json(), str)
    assert seed2.json().startswith("Life is")
    assert httpx.post(f"{live.url}/generate_quote", json={"prompt": "x"}).status_code == 422
    assert httpx.get(f"{live.url}/", headers={"Accept": "application/json"}).json() == {
        "message": "This is Quote Generation API test"
    }


def test_live_32_concurrent_requests_are_batched(live: LiveServer) -> None:
    before = _batch_stats(live)
    prompts = [f"prompt {i} is" for i in range(32)]

    def ask(prompt: str) -> tuple[int, str]:
        r = httpx.post(
            f"{live.url}/generate", json={"text": prompt, "max_new_tokens": 8}, timeout=60
        )
        return r.status_code, r.json()["generated_text"]

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(ask, prompts))
    assert all(status == 200 for status, _ in answers)
    # Each request got its own result back.
    assert all(text.startswith(p) for p, (_, text) in zip(prompts, answers, strict=True))
    count, total = (a - b for a, b in zip(_batch_stats(live), before, strict=True))
    assert total == 32
    assert count < 32, "requests were not batched together"


def _batch_stats(live: LiveServer) -> tuple[float, float]:
    text = httpx.get(f"{live.url}/metrics").text
    count = float(re.search(r"^quotegen_batch_size_count ([\d.e+]+)$", text, re.M).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"^quotegen_batch_size_sum ([\d.e+]+)$", text, re.M).group(1))  # type: ignore[union-attr]
    return count, total


def test_live_openai_sdk_works_unchanged(live: LiveServer) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
    (model,) = client.models.list().data
    completion = client.completions.create(
        model=model.id, prompt=["life is", "love is"], max_tokens=5, seed=3, n=2
    )
    assert len(completion.choices) == 4
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 20
    pieces = [
        chunk.choices[0].text
        for chunk in client.completions.create(
            model=model.id, prompt="life is", max_tokens=6, stream=True, seed=3
        )
        if chunk.choices
    ]
    assert pieces


def test_live_streaming_native(live: LiveServer) -> None:
    with httpx.stream(
        "POST",
        f"{live.url}/v1/generate/stream",
        json={"prompt": "life is", "settings": {"max_new_tokens": 10, "stop": []}},
        timeout=30,
    ) as response:
        events = [line for line in response.iter_lines() if line.startswith("event: ")]
    assert events[-1] == "event: result"
    assert events.count("event: token") >= 1


def test_live_bad_input_then_still_serving(live: LiveServer) -> None:
    bad = httpx.post(
        f"{live.url}/v1/completions",
        content=b"{not json",
        timeout=10,
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 422
    assert httpx.get(f"{live.url}/health").status_code == 200


def test_live_overload_is_refused_fast(tiny_model_dir: Path) -> None:
    server = start_server(
        tiny_model_dir, "--max-queue", "1", "--max-batch-size", "1", "--max-wait-ms", "0"
    )
    try:

        def ask(_: int) -> tuple[int, float, str | None]:
            started = time.monotonic()
            r = httpx.post(
                f"{server.url}/generate",
                json={"text": "x", "max_new_tokens": 100, "min_new_tokens": 100},
                timeout=60,
            )
            return r.status_code, time.monotonic() - started, r.headers.get("retry-after")

        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(ask, range(24)))
    finally:
        code, err = stop_server(server)
    assert code == 0, err
    statuses = [s for s, _, _ in answers]
    assert set(statuses) <= {200, 503}
    assert 503 in statuses
    assert all(ra == "1" for s, _, ra in answers if s == 503)
    assert min(t for s, t, _ in answers if s == 503) < 1.0


def test_live_sigterm_drains_in_flight_requests(tiny_model_dir: Path) -> None:
    server = start_server(tiny_model_dir)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(
                httpx.post,
                f"{server.url}/generate",
                json={"text": "x", "max_new_tokens": 120, "min_new_tokens": 120},
                timeout=60,
            )
            for _ in range(4)
        ]
        time.sleep(0.3)
        code, err = stop_server(server)
        responses = [f.result() for f in futures]
    assert code == 0, err
    assert [r.status_code for r in responses] == [200] * 4


def test_serve_exits_1_when_the_model_cannot_load(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "quotegen",
            "serve",
            "--model",
            str(tmp_path),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 1
    assert "is not a model directory" in proc.stderr.splitlines()[-1]
    assert "Traceback" not in proc.stderr


def test_serve_bad_model_name_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "quotegen", "serve", "--model", "bad name!"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: ")


def test_server_log_has_no_library_warnings(tiny_model_dir: Path) -> None:
    """The first requests to the original routes and chat used to print pydantic's
    UnsupportedFieldAttributeWarning (FastAPI's parameter aliases) into the server log."""
    server = start_server(tiny_model_dir)
    try:
        httpx.post(f"{server.url}/generate", json={"text": "life is"}, timeout=30)
        httpx.post(f"{server.url}/generate_quote", params={"prompt": "x"}, timeout=30)
        body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 3}
        assert httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30).is_success
    finally:
        code, err = stop_server(server)
    assert code == 0
    assert "Warning" not in err, err
