"""A real ``quotegen serve`` subprocess on loopback, for the tests that talk to one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model: Path, *args: str) -> LiveServer:
    """A real server; its stderr goes to a file (a pipe nobody reads would fill and block it)."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="quotegen-serve-", suffix=".log")[1])
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quotegen",
                "serve",
                "--model",
                str(model),
                "--port",
                str(port),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=os.environ.copy(),
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return LiveServer(url, process, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not become healthy")


def stop_server(server: LiveServer) -> tuple[int, str]:
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=60)
    log = server.log.read_text(errors="replace")
    server.log.unlink(missing_ok=True)
    return server.process.returncode, log


@contextmanager
def serving(model: Path, *args: str) -> Iterator[LiveServer]:
    """A live server for a block; it must then stop cleanly (exit 0, no traceback)."""
    server = start_server(model, *args)
    try:
        yield server
    finally:
        code, err = stop_server(server)
    assert code == 0, err
    assert "Traceback" not in err
    # No --host given: loopback only, the safe default.
    assert "Uvicorn running on http://127.0.0.1:" in err
