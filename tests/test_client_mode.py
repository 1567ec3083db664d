"""Client mode: ``generate --server URL`` (or QUOTEGEN_SERVER) against a real server, in real
processes. Its output must be exactly a local run's, and it must not import torch."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli, run_on_terminal
from tests.helpers.live import LiveServer, serving

PROMPTS = "life is\nlove\n\nthe secret of success\nnever\n"


@pytest.fixture(scope="module")
def live(tiny_model_dir: Path) -> Iterator[LiveServer]:
    # One row per batch, here and in the local runs compared with it: results are the same
    # for the same batch composition; across batch sizes, float rounding can flip a random
    # tiny model's near-tie samples (see TextEngine.prepare).
    with serving(tiny_model_dir, "--max-wait-ms", "5", "--max-batch-size", "1") as server:
        yield server


def _rows(stdout: str) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in stdout.splitlines()]
    for row in rows:
        row.pop("seconds")
    return rows


@pytest.mark.parametrize("samples", ["1", "2"])
def test_pipeline_output_equals_a_local_run(
    live: LiveServer, tiny_model_dir: Path, samples: str
) -> None:
    args = ["generate", "--json", "--seed", "11", "-n", samples, "--batch-size", "1"]
    remote = run_cli(*args, "--server", live.url, input=PROMPTS)
    local = run_cli(*args, "--model", str(tiny_model_dir), input=PROMPTS)
    assert remote.returncode == 0, remote.stderr
    assert local.returncode == 0, local.stderr
    assert _rows(remote.stdout) == _rows(local.stdout)
    assert len(remote.stdout.splitlines()) == 5 * int(samples)


def test_plain_lines_and_environment_variable(live: LiveServer, tiny_model_dir: Path) -> None:
    args = ["generate", "--seed", "4", "--batch-size", "1"]
    remote = run_cli(*args, input=PROMPTS, env={"QUOTEGEN_SERVER": live.url})
    local = run_cli(*args, "-m", str(tiny_model_dir), input=PROMPTS)
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout
    assert len(remote.stdout.splitlines()) == 5


def test_terminal_streaming_ends_as_the_piped_line(live: LiveServer) -> None:
    args = ["generate", "--server", live.url, "--seed", "8", "life is"]
    code, on_terminal = run_on_terminal(*args)
    piped = run_cli(*args).stdout
    assert code == 0
    assert on_terminal == piped
    assert on_terminal.startswith("Life is")


def test_client_mode_imports_no_torch(live: LiveServer) -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted(m for m in ('torch', 'transformers') "
        "if m in sys.modules), file=sys.stderr))\n"
        f"sys.argv = ['quotegen', 'generate', '--server', {live.url!r}, 'life is']\n"
        "from quotegen.cli import main\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]"
    assert proc.stdout.startswith("Life is")


def test_unreachable_server_is_one_clear_line() -> None:
    proc = run_cli("generate", "--server", "http://127.0.0.1:9", "x")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("Error: Cannot reach the quotegen server at http://127.0.0.1:9")
    assert proc.stdout == ""


def test_local_model_flags_conflict_with_server(live: LiveServer) -> None:
    proc = run_cli("generate", "--server", live.url, "--quantize", "int8", "x")
    assert proc.returncode == 2
    assert "--quantize chooses a local model" in proc.stderr
    # Their environment variables are ignored instead (they may be set for local runs).
    ok = run_cli("generate", "x", env={"QUOTEGEN_SERVER": live.url, "QUOTEGEN_MODEL": "nope"})
    assert ok.returncode == 0, ok.stderr


def test_api_key(tiny_model_dir: Path) -> None:
    with serving(tiny_model_dir, "--api-key", "sesame") as server:
        wrong = run_cli(
            "generate", "x", env={"QUOTEGEN_SERVER": server.url, "QUOTEGEN_API_KEY": "nope"}
        )
        missing = run_cli("generate", "x", "--server", server.url)
        right = run_cli(
            "generate", "x", env={"QUOTEGEN_SERVER": server.url, "QUOTEGEN_API_KEY": "sesame"}
        )
    for proc in (wrong, missing):
        assert proc.returncode == 1
        assert proc.stderr.count("\n") == 1
        assert "refused the API key" in proc.stderr
        assert "QUOTEGEN_API_KEY" in proc.stderr
    assert right.returncode == 0, right.stderr
    assert right.stdout.startswith("X")


def test_server_side_errors_are_passed_on(live: LiveServer) -> None:
    # A prompt over the server's byte limit: the server's own message, one line, exit 1.
    proc = run_cli("generate", "--server", live.url, "x" * 20_000)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "limit" in proc.stderr


def test_closed_pipe_is_quiet(live: LiveServer) -> None:
    proc = subprocess.run(
        f"printf 'a\\nb\\nc\\nd\\n' | {sys.executable} -m quotegen generate --server "
        f"{live.url} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_bad_flags_are_usage_errors_as_locally(live: LiveServer, tiny_model_dir: Path) -> None:
    for flags in (["--temperature", "99"], ["--min-new-tokens", "9", "-t", "2"]):
        remote = run_cli("generate", "--server", live.url, *flags, "x")
        local = run_cli("generate", "-m", str(tiny_model_dir), *flags, "x")
        assert remote.returncode == local.returncode == 2, remote.stderr
        assert remote.stderr.splitlines()[0] == local.stderr.splitlines()[0]


def test_client_waits_for_a_server_still_loading(fake_engine) -> None:  # type: ignore[no-untyped-def]
    """A server answering 503 while its model loads is waited for, not reported as an error."""
    import threading

    import uvicorn

    from quotegen.cli.client import Client
    from quotegen.server.app import create_app
    from tests.helpers.live import free_port

    release = threading.Event()

    def loader():  # type: ignore[no-untyped-def]
        release.wait(30)
        return fake_engine

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(loader=loader), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        threading.Timer(1.5, release.set).start()
        started = time.monotonic()
        results = Client(f"127.0.0.1:{port}").generate(["a b"], {"seed": 1, "max_new_tokens": 2})
        assert time.monotonic() - started >= 1.0  # it did wait for the model
        assert results[0]["completion"] == " w0 w1"
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)
