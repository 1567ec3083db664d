"""Resumable training checkpoints: the trainable weights, the optimiser and schedule, the step
and the report so far, in ``OUT/.checkpoint``.

A checkpoint records a fingerprint of the run (every setting but where it is saved, and the
training quotes); a run whose fingerprint differs refuses to resume from it rather than mix
two runs. It is written whole (a staging file renamed into place), so a run killed while
saving keeps the checkpoint before. The batches of an epoch are drawn from a generator seeded
by the run's seed and the epoch, so a resumed run skips exactly the batches already done.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quotegen.errors import InputError
from quotegen.inputs import Example
from quotegen.loading.cache import staged_file
from quotegen.schemas import TrainReport
from quotegen.settings import TrainConfig

#: Settings that may change between a run and its resumption.
_FREE = {"out", "device", "checkpoint_every", "allow_pickle", "trust_remote_code"}


@dataclass
class Resumed:
    """What a checkpoint holds, read but not yet applied."""

    state: dict[str, Any]

    def restore(self, model: Any, optimizer: Any, scheduler: Any) -> tuple[TrainReport, int]:
        import torch

        weights = self.state["weights"]
        missing = set(weights) - {name for name, _ in model.named_parameters()}
        if missing:
            raise InputError(
                f"The checkpoint does not fit the model ({len(missing)} unknown tensors)."
            )
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in weights:
                    parameter.copy_(weights[name])
        optimizer.load_state_dict(self.state["optimizer"])
        scheduler.load_state_dict(self.state["scheduler"])
        torch.set_rng_state(self.state["torch_rng"])
        report = TrainReport.model_validate(self.state["report"])
        return report, int(self.state["step"])


class Checkpoint:
    """The checkpoint of one run, in ``config.out / ".checkpoint"``."""

    def __init__(self, config: TrainConfig, train_quotes: Sequence[Example]) -> None:
        settings = config.model_dump(mode="json", exclude=_FREE)
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for quote in train_quotes:
            line = quote if isinstance(quote, str) else quote.key()
            digest.update(line.encode("utf-8") + b"\n")
        self.fingerprint = digest.hexdigest()
        self.path = config.out / ".checkpoint" / "state.pt"
        #: Training seconds spent before this process resumed.
        self.seconds_before = 0.0

    def load(self) -> Resumed | None:
        """The checkpoint of this run, if there is one; an error if it is another run's."""
        if not self.path.is_file():
            return None
        import torch

        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputError(
                f"The checkpoint {self.path} cannot be read ({type(exc).__name__}). Remove "
                f"{self.path.parent} to start again."
            ) from exc
        if state.get("fingerprint") != self.fingerprint:
            raise InputError(
                f"{self.path.parent} holds the checkpoint of a run with other settings or "
                f"data. Use the same ones to resume, or remove {self.path.parent} (or pick "
                "another --out) to start again."
            )
        self.seconds_before = float(state.get("seconds", 0.0))
        return Resumed(state)

    def save(
        self,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        report: TrainReport,
        step: int,
        started: float,
    ) -> None:
        import torch

        state = {
            "fingerprint": self.fingerprint,
            "step": step,
            "weights": {
                name: parameter.detach().clone()
                for name, parameter in model.named_parameters()
                if parameter.requires_grad
            },
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "report": report.model_dump(mode="json"),
            "seconds": self.seconds_before + time.perf_counter() - started,
        }
        with staged_file(self.path) as staging:
            torch.save(state, staging)

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.path.parent, ignore_errors=True)
