"""Running the real ``quotegen`` command as a user would: a subprocess with pipes, or with
stdout on a pseudo-terminal."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(
    *args: str,
    input: bytes | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m quotegen`` as a real subprocess (stdin/stdout are pipes, not terminals)."""
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        [sys.executable, "-m", "quotegen", *args],
        input=data if data is not None else b"",
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def run_on_terminal(*args: str, timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m quotegen`` with stdout on a pseudo-terminal (as a user's shell would);
    its exit code and everything it printed there."""
    import pty

    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "quotegen", *args],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=timeout)
    os.close(primary)
    return proc.returncode, b"".join(chunks).decode().replace("\r\n", "\n")
