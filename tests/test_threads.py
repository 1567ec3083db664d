"""The decode loop's thread count: the cores other processes leave free, or what a user
fixed; the counting itself on /proc/stat as this machine writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from quotegen.engine import threads
from quotegen.errors import DeviceError
from tests.helpers.cli import run_cli


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """A 4-core machine whose clocks the test moves: wall time, all busy time, our own."""
    clock = {"now": 100.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads, "_cpus", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(threads, "_busy_seconds", lambda cpus: clock["busy"])
    monkeypatch.setattr(threads, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(threads, "_IMPORTED", (100.0, 0.0, 0.0))  # "import" at the start
    monkeypatch.delenv("QUOTEGEN_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return clock


def _after(clock: dict[str, float], seconds: float, busy: float, own: float) -> None:
    clock["now"] += seconds
    clock["busy"] += busy
    clock["own"] += own


def test_threads_follow_the_cores_others_leave_free(
    machine: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: counts[-1] if counts else 4)
    counts: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", counts.append)
    pool = threads.Threads(interval=1.0)
    _after(machine, 0.1, 0.4, 0.3)
    pool.adjust()  # too soon after the import (the first count waits 0.2 s): nothing yet
    assert counts == []
    _after(machine, 0.9, 3.6, 2.7)  # our own 3 core-seconds of 4 busy: others used 1 core
    pool.adjust()
    assert counts == [3]
    _after(machine, 0.5, 2.0, 0.0)
    pool.adjust()  # then once a second
    assert counts == [3]
    _after(machine, 0.5, 0.5, 0.5)
    pool.adjust()  # others used 2 cores in that second: 2 left
    assert counts == [3, 2]
    _after(machine, 1.0, 4.2, 0.0)  # everything taken: still one thread
    pool.adjust()
    assert counts == [3, 2, 1]
    _after(machine, 1.0, 0.3, 0.0)  # quiet again (a third of a core is not a core taken)
    pool.adjust()
    assert counts == [3, 2, 1, 4]


def test_a_fixed_count_wins(machine: dict[str, float], monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    counts: list[int] = []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 0)
    monkeypatch.setattr(torch, "set_num_threads", counts.append)
    monkeypatch.setenv("QUOTEGEN_THREADS", "2")
    pool = threads.Threads(interval=1.0)
    _after(machine, 5.0, 20.0, 0.0)
    pool.adjust()
    assert counts == [2]  # set once, never re-counted
    monkeypatch.setenv("QUOTEGEN_THREADS", "lots")
    with pytest.raises(DeviceError, match="QUOTEGEN_THREADS='lots' is not a thread count"):
        threads.Threads()
    monkeypatch.delenv("QUOTEGEN_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.fixed_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # torch's to ignore, and quotegen's
    assert threads.fixed_threads() is None
    assert not threads.Threads(enabled=False).enabled  # a GPU's engine counts nothing


def test_busy_seconds_reads_this_machine() -> None:
    cpus = threads._cpus()
    first = threads._busy_seconds(cpus)
    assert first is not None
    assert first > 0
    assert threads._busy_seconds(set()) == 0


def test_a_bad_thread_count_is_one_line_before_loading(tiny_model_dir: Path) -> None:
    result = run_cli(
        "generate", "-m", str(tiny_model_dir), "life is", env={"QUOTEGEN_THREADS": "0"}
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: QUOTEGEN_THREADS='0' is not a thread count: set a whole number of 1 or more, "
        "or unset it to let quotegen use the cores other work leaves free."
    ]
