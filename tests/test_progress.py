"""The core's progress reports reach only a listener installed on the same thread."""

from __future__ import annotations

import threading

from quotegen.progress import listening, report


def test_reports_reach_the_listener_only_inside_its_block() -> None:
    heard: list[tuple[str, float, float | None, str]] = []
    report("before", 1, 2)
    with listening(lambda *args: heard.append(args)):
        report("Merging", 1, 3)
        report("Fetching", 5, unit="bytes")
    report("after", 1, 1)
    assert heard == [("Merging", 1, 3, ""), ("Fetching", 5, None, "bytes")]


def test_another_thread_does_not_hear_a_commands_listener() -> None:
    heard: list[object] = []
    with listening(lambda *args: heard.append(args)):
        worker = threading.Thread(target=report, args=("elsewhere", 1, 1))
        worker.start()
        worker.join()
    assert heard == []
