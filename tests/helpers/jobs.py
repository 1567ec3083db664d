"""Prompt files and result rows of ``quotegen batch`` runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def rows(path: Path) -> list[dict[str, Any]]:
    """The output's rows without their timing (the only thing two runs may differ in)."""
    found = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    for row in found:
        row.pop("seconds", None)
    return found


def prompts_file(folder: Path, count: int) -> Path:
    words = ["life is", "love", "", "the secret of success", "never", "fear", "hope is"]
    path = folder / "prompts.txt"
    path.write_text("".join(f"{words[i % len(words)]}\n" for i in range(count)), "utf-8")
    return path
