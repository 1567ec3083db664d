"""The default model as a new user meets it: the quote adapter on its pinned base once
prepared (CI prepares it before pytest, since the registry is reachable there), and the
bundled quotegen-mini, with one line saying why, where the base cannot be had."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quotegen.config import BUNDLED_MODEL_NAME, DEFAULT_MODEL_NAME
from tests.conftest import PREPARED_CACHE, USER_CACHE
from tests.helpers.cli import run_cli
from tests.helpers.live import free_port


def test_offline_first_use_falls_back_to_quotegen_mini_with_one_line(tmp_path: Path) -> None:
    env = {"QUOTEGEN_CACHE": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}
    proc = run_cli("generate", "--seed", "1", "life is", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Life is")
    assert proc.stdout.count("\n") == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Using {BUNDLED_MODEL_NAME}: the default model's base")
    assert "quotegen download" in lines[0]
    listed = run_cli("models", "--json", env=env)
    entries = {e["name"]: e for e in map(json.loads, listed.stdout.splitlines())}
    assert entries[DEFAULT_MODEL_NAME]["default"] is True
    assert entries[DEFAULT_MODEL_NAME]["prepared"] is False


@pytest.fixture(scope="module")
def prepared() -> dict[str, str]:
    """The environment of a machine where the default model is prepared."""
    # CI prepares it and says so (QG_TESTS_REQUIRE_PREPARED=1): there a missing model fails
    # these checks instead of skipping them.
    missing = pytest.fail if os.environ.get("QG_TESTS_REQUIRE_PREPARED") else pytest.skip
    env = {"QUOTEGEN_CACHE": str(PREPARED_CACHE)}
    if PREPARED_CACHE is None:
        missing(
            "the default-model checks read only a cache named by QUOTEGEN_CACHE (never your "
            f"own); to use the one `quotegen download` prepared: QUOTEGEN_CACHE={USER_CACHE} "
            "python -m pytest"
        )
    listed = run_cli("models", "--json", env=env)
    entries = {e["name"]: e for e in map(json.loads, listed.stdout.splitlines())}
    if not entries.get(DEFAULT_MODEL_NAME, {}).get("prepared"):
        missing(f"the default model is not prepared in {PREPARED_CACHE}")
    return env


def test_default_generates_a_quote(prepared: dict[str, str]) -> None:
    proc = run_cli("generate", "--json", "--seed", "7", "-n", "4", "life is", env=prepared)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no fallback, no fetch: it is prepared
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == 4
    for result in results:
        assert result["model"] == DEFAULT_MODEL_NAME
        assert result["text"].startswith("Life is")
        assert result["text"][-1] in ".!?\"'"
        assert 3 <= len(result["text"].split()) <= 60


def test_default_one_word_prompts_start_sayings(prepared: dict[str, str]) -> None:
    proc = run_cli("generate", "--seed", "3", "love", "never", env=prepared)
    assert proc.returncode == 0, proc.stderr
    love, never = proc.stdout.splitlines()
    assert love.startswith("Love")
    assert never.startswith("Never")
    assert not love[4:5].isalnum()
    assert not never[5:6].isalnum()


@pytest.fixture(scope="module")
def server(prepared: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "quotegen", "serve", "--port", str(port)],
        env={**os.environ, **prepared},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_default_chat_answers_a_request_with_a_quote_about_it(server: str) -> None:
    """Through the openai SDK: a request for a quote about a topic, after a system message and
    an earlier turn, gets one quote about that topic, never the request echoed back."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused")
    model = client.models.list().data[0].id
    assert model == DEFAULT_MODEL_NAME
    messages: list[Any] = [
        {"role": "system", "content": "You write quotes."},
        {"role": "user", "content": "Give me a quote about time."},
        {"role": "assistant", "content": "Time is what we want most, but what we use worst."},
        {"role": "user", "content": "Now give me a quote about courage."},
    ]
    reply = client.chat.completions.create(model=model, messages=messages, seed=5)
    text = reply.choices[0].message.content or ""
    assert "cour" in text.lower()
    assert "give me" not in text.lower()
    assert "<|im_" not in text
    assert "assistant" not in text.lower()
    assert reply.choices[0].finish_reason == "stop"


def test_default_about_starts_with_the_prompt(prepared: dict[str, str]) -> None:
    proc = run_cli("generate", "--about", "money", "--seed", "2", "-n", "3", "never", env=prepared)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert len(set(lines)) == 3
    assert all(line.startswith("Never ") for line in lines)


def test_default_seed_routes_keep_their_settings(server: str) -> None:
    import httpx

    seed1 = httpx.post(f"{server}/generate", json={"text": "life is"}, timeout=120).json()
    assert set(seed1) == {"generated_text"}
    assert seed1["generated_text"].startswith("life is")
    seed2 = httpx.post(f"{server}/generate_quote", params={"prompt": "love is"}, timeout=120)
    assert isinstance(seed2.json(), str)
    assert seed2.json().lower().startswith("love is")
