"""A fake engine for fast unit tests: the public ``TextEngine`` interface, no model.

Each whitespace-separated word of a prompt is a token; token k of a row decodes as " w<k>".
It is a ``TextEngine``: rows are prepared by the shared ``prepare`` and advanced by the real
``Row.add_token``, so seeds, default prompts, context checks, stop strings and results are
quotegen's own code; only the model is fake. ``delay`` slows each step down; ``seen`` records
every batch started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from quotegen.engine.generation import TextEngine
from quotegen.engine.rows import Admit, Row
from quotegen.schemas import ModelInfo


class FakeEngine(TextEngine):
    def __init__(self, delay: float = 0.0, context_length: int = 64) -> None:
        self.delay = delay
        self.seen: list[list[Row]] = []
        self._info = ModelInfo(
            name="fake-model", device="cpu", dtype="float32", context_length=context_length
        )
        self._lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def encode(self, text: str) -> list[int]:
        return [len(w) for w in text.split()] or [0]

    def steps(self, rows: Sequence[Row], admit: Admit | None = None) -> Iterator[None]:
        with self._lock:
            self.seen.append(list(rows))
            active = list(rows)
            while True:
                if admit is not None:
                    active += admit(len(active))
                if not active:
                    return
                if self.delay:
                    time.sleep(self.delay)
                for row in active:
                    row.add_token(1000 + len(row.token_ids), is_eos=False, decode=_decode)
                    if row.done and row.on_finish is not None:
                        row.on_finish(row)
                active = [r for r in active if not r.done]
                yield


def _decode(context: Sequence[int], ids: Sequence[int]) -> str:
    return "".join(f" w{i - 1000}" for i in ids)
