"""How many threads torch computes with on the CPU: the cores other processes leave free.

A decode step of a small model is hundreds of short parallel regions, each as slow as its
slowest thread. When another process holds one of the cores, the thread sharing that core
runs half the time and every region waits for it: on 2 cores, ``generate`` took 2.3x as long
with 2 threads as with 1 (docs/performance.md). So the decode loop asks, at most once a
``INTERVAL`` seconds, how much of this process's cores the *other* processes used since it
last asked (``/proc/stat`` less this process's own CPU time), and computes with the rest:
never fewer than 1 thread, never more than the cores this process may run on, nor than torch
had when the engine was made (a Ray replica's share).

``QUOTEGEN_THREADS=N`` fixes the count (``OMP_NUM_THREADS`` too, as torch reads it); off
Linux, with no ``/proc/stat``, torch's own choice stands.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from quotegen.config import fixed_threads
from quotegen.errors import DeviceError

INTERVAL = 1.0
#: The first count comes sooner: a one-prompt ``generate`` decodes for about a second.
FIRST = 0.2
#: A core counts as taken when other processes used at least this share of it.
TAKEN = 0.5


def _cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _busy_seconds(cpus: set[int]) -> float | None:
    """CPU seconds spent not idle on ``cpus`` since boot, or None where it cannot be read."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        busy += sum(values) - values[3] - values[4]
    return busy / tick


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


class Threads:
    """Keeps torch's thread count at the cores other processes leave free (module doc)."""

    def __init__(self, *, enabled: bool = True, interval: float = INTERVAL) -> None:
        self.cpus = _cpus()
        self.interval = interval
        self.enabled = enabled
        try:
            self.fixed = fixed_threads() if enabled else None
        except ValueError as exc:  # place() says it first; this is for engines made directly
            raise DeviceError(str(exc)) from None
        # Never more than torch was given when the engine was made (a Ray replica's CPUs).
        self.most = min(len(self.cpus), _torch_threads()) if enabled else 1
        # Counted from when this module was imported (before the model loaded), so the first
        # decode steps already know what the machine is doing.
        self._last = _IMPORTED if enabled else (time.monotonic(), None, 0.0)
        self._counted = False
        if self.fixed is not None:
            self._set(self.fixed)

    def adjust(self) -> None:
        """Re-count the free cores if ``interval`` has passed, and compute with them."""
        now = time.monotonic()
        wait = self.interval if self._counted else FIRST
        if not self.enabled or self.fixed is not None or now - self._last[0] < wait:
            return
        self._counted = True
        busy, own = _busy_seconds(self.cpus), _own_seconds()
        then, busy_then, own_then = self._last
        self._last = (now, busy, own)
        if busy is None or busy_then is None:
            return
        others = max(0.0, (busy - busy_then) - (own - own_then)) / (now - then)
        taken = int(others + (1 - TAKEN))  # cores at least half used by other processes
        self._set(max(1, min(self.most, len(self.cpus) - taken)))

    @staticmethod
    def _set(count: int) -> None:
        import torch

        if torch.get_num_threads() != count:
            torch.set_num_threads(count)


_IMPORTED = (time.monotonic(), _busy_seconds(_cpus()), _own_seconds())
