"""`batch --ray` and `serve --ray` on a local Ray cluster (the `ray` extra; CI installs it),
in real processes with the tiny model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.jobs import prompts_file, rows
from tests.helpers.live import free_port

if not os.environ.get("CI"):
    pytest.importorskip("ray", reason="needs the ray extra: pip install 'quotegen[ray]'")


def ray_processes(wait_s: float = 30.0) -> list[str]:
    """Ray's daemons and workers still running on this machine (after waiting a moment for
    the ones on their way out)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = subprocess.run(
            ["ps", "-eo", "args"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        left = [p for p in found if "raylet" in p or "gcs_server" in p or p.startswith("ray::")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def test_batch_on_ray_equals_the_local_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = prompts_file(tmp_path, 14)
    args = ["--seed", "4", "-t", "8", "-n", "2", "-b", "4", "--model", str(tiny_model_dir)]
    local = tmp_path / "local.jsonl"
    assert run_cli("batch", str(source), "-o", str(local), *args).returncode == 0
    on_ray = tmp_path / "ray.jsonl"
    proc = run_cli(
        "batch", str(source), "-o", str(on_ray), *args, "--ray", "local", "--replicas", "2",
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert rows(on_ray) == rows(local)
    assert ray_processes() == []  # the local cluster it started is gone


def test_batch_on_ray_resumes_a_local_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The output format and the chunks are the same: a job started here can finish on Ray."""
    source = prompts_file(tmp_path, 12)
    args = ["--seed", "8", "-t", "6", "-b", "4", "--model", str(tiny_model_dir)]
    whole = tmp_path / "whole.jsonl"
    assert run_cli("batch", str(source), "-o", str(whole), *args).returncode == 0
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.batch.json").write_bytes(
        (tmp_path / "whole.jsonl.batch.json").read_bytes()
    )
    lines = whole.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:5]))  # as if killed after five lines
    proc = run_cli("batch", str(source), "-o", str(out), *args, "--ray", "local", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert rows(out) == rows(whole)


def test_serve_on_ray_with_two_replicas(tiny_model_dir: Path) -> None:
    from openai import OpenAI

    port = free_port()
    log = Path(tempfile.mkstemp(prefix="quotegen-ray-serve-", suffix=".log")[1])
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "quotegen", "serve", "--model", str(tiny_model_dir),
             "--port", str(port), "--ray", "local", "--replicas", "2"],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("serve --ray did not become healthy:\n" + log.read_text()[-3000:])
        # Both replicas have loaded their model before the checks (the proxy spreads requests).
        for _ in range(60):
            statuses = {httpx.get(f"{url}/health", timeout=5).status_code for _ in range(6)}
            if statuses == {200}:
                break
            time.sleep(1)
        seed1 = httpx.post(f"{url}/generate", json={"text": "life is"}, timeout=60)
        assert seed1.status_code == 200
        assert list(seed1.json()) == ["generated_text"]
        assert seed1.json()["generated_text"].startswith("life is")
        seed2 = httpx.post(f"{url}/generate_quote", params={"prompt": "life is"}, timeout=60)
        assert seed2.status_code == 200
        assert seed2.json().startswith("Life is")
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        completion = client.completions.create(model="", prompt="love", max_tokens=4, n=2)
        assert len(completion.choices) == 2
        assert "quotegen" in httpx.get(f"{url}/", timeout=30).text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    text = log.read_text(errors="replace")
    log.unlink(missing_ok=True)
    assert code == 0, text[-3000:]
    assert "Traceback" not in text
    assert "with Ray Serve, 2 replicas" in text
    assert ray_processes() == []


def test_ray_extra_missing_is_named(tmp_path: Path) -> None:
    """Without Ray installed, --ray names the extra (simulated by hiding the package)."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'):\n"
        "            raise ImportError('hidden for the test')\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    source = prompts_file(tmp_path, 2)
    env = {"PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = run_cli("batch", str(source), "-o", str(tmp_path / "o.jsonl"), "--ray", "local", env=env)
    assert proc.returncode == 1
    assert "pip install 'quotegen[ray]'" in proc.stderr
    served = run_cli("serve", "--ray", "local", env=env)
    assert served.returncode == 1
    assert "pip install 'quotegen[ray]'" in served.stderr


def test_serve_config_app_builder(tiny_model_dir: Path) -> None:
    """What deploy/rayservice.yaml imports builds the same deployment (without starting Ray)."""
    from quotegen.server.rayserve import app_builder

    application = app_builder({"model": str(tiny_model_dir), "api_key": "k", "max_batch_size": "8"})
    deployment = application._bound_deployment
    assert deployment.name == "QuotegenReplica"
    model, load, config = deployment.init_args
    assert model["path"] == str(tiny_model_dir)
    assert load["device"] == "cpu"
    assert config["api_key"] == "k"
    assert config["max_batch_size"] == 8
