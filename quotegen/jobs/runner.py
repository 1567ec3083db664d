"""A whole batch job: its manifest, the seed a resumed run keeps, the chunks still to do,
generated here or by replicas on Ray, appended in order, with progress reported through a
callback. The CLI (``quotegen batch``) only parses flags and presents."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quotegen.jobs.chunks import ModelDefaults, chunks, now, rows_per_line, run_local
from quotegen.jobs.files import Job, Manifest, ResultsFile, file_digest, manifest_path, read_jobs

if TYPE_CHECKING:
    from quotegen.engine.generation import TextEngine
    from quotegen.loading.conversion import Notify
    from quotegen.loading.references import ModelRef

#: Progress: (lines done, lines in all, a short rate text).
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class RayPlan:
    """Where and how a job runs on Ray: the cluster's address and the replicas."""

    address: str
    replicas: int = 1
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0


@dataclass(frozen=True)
class JobReport:
    lines: int
    done_before: int
    written: int
    seconds: float

    @property
    def complete(self) -> bool:
        return self.written == self.lines


def run_file_job(
    input_file: Path,
    output: Path,
    ref: ModelRef,
    given: Mapping[str, Any],
    *,
    batch_size: int,
    local: Callable[[ModelRef], TextEngine],
    load: Mapping[str, Any],
    ray: RayPlan | None = None,
    notify: Notify | None = None,
    progress: Progress | None = None,
) -> JobReport:
    """Generate every line of ``input_file`` into ``output``, resuming what a previous run
    with the same input, model and settings left. ``load`` is ``load_model``'s keyword
    arguments (the loading flags); ``local`` loads the engine for a run here (called only
    when work is left); with ``ray``, the replicas load the model with ``load`` instead."""
    from quotegen.loading.locating import declared_defaults, locate_or_fall_back

    jobs = read_jobs(input_file)
    allow_pickle = bool(load.get("allow_pickle"))
    ref, path = locate_or_fall_back(ref, allow_pickle=allow_pickle, notify=notify)
    resolver = ModelDefaults(declared_defaults(path))
    given = dict(given)
    if "seed" not in given:
        # A new run draws its seed once; a resumed run keeps the one it drew.
        given["seed"] = _saved_seed(manifest_path(output))
        if given["seed"] is None:
            import secrets

            from quotegen.config import MAX_SEED

            given["seed"] = secrets.randbelow(MAX_SEED)
    base = resolver.settings(given)
    manifest = Manifest(
        input_sha256=file_digest(input_file),
        lines=len(jobs),
        model=f"{ref}@{path.name}" if ref.repo_id else str(ref),
        settings=base.model_dump(mode="json"),
        batch_size=batch_size,
        created=now(),
    )
    results = ResultsFile(output, manifest)
    done = results.open(rows_per_line(jobs, resolver, given))
    if done == len(jobs):
        results.close(complete=True)
        return JobReport(len(jobs), done, done, 0.0)
    if done and notify is not None:
        notify(f"Resuming {output}: {done} of {len(jobs)} lines are done.")
    # Whole chunks are generated again from the first unfinished one (the same batches as an
    # uninterrupted run); the lines already written are not written twice.
    pending = [c for c in chunks(jobs, batch_size) if c[-1].index >= done]
    written = done
    produced: Iterable[list[list[dict[str, Any]]]]
    started = time.monotonic()
    try:
        if ray is None:
            engine = local(ref)
            started = time.monotonic()
            produced = run_local(engine, pending, given, results.manifest.created)
        else:
            produced = _on_ray(ray, ref, dict(load), pending, given, results.manifest.created)
        if progress is not None:
            progress(done, len(jobs), "")
        for chunk, outputs in zip(pending, produced, strict=False):
            for job, rows in zip(chunk, outputs, strict=True):
                if job.index >= done:
                    results.append(rows)
                    written += 1
            if progress is not None:
                rate = (written - done) / max(1e-9, time.monotonic() - started)
                progress(written, len(jobs), f"{rate:.1f} lines/s")
    finally:
        results.close(complete=written == len(jobs))
    return JobReport(len(jobs), done, written, time.monotonic() - started)


def _saved_seed(saved: Path) -> int | None:
    try:
        seed = json.loads(saved.read_text("utf-8"))["settings"]["seed"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return seed if isinstance(seed, int) else None


def _on_ray(
    plan: RayPlan,
    ref: ModelRef,
    load: dict[str, Any],
    pending: list[list[Job]],
    given: Mapping[str, Any],
    created: int,
) -> Iterable[list[list[dict[str, Any]]]]:
    """The chunks' outputs from an actor pool on Ray; Ray is stopped when they are done."""
    from quotegen.jobs.cluster import connect, disconnect, replica_device, run_on_ray

    started = connect(plan.address)
    try:
        yield from run_on_ray(
            ref.to_fields(),
            {**load, "device": replica_device(plan.gpus_per_replica)},
            pending,
            given,
            created,
            replicas=plan.replicas,
            cpus_per_replica=plan.cpus_per_replica,
            gpus_per_replica=plan.gpus_per_replica,
            threads=max(1, int(plan.cpus_per_replica)),
        )
    finally:
        disconnect(started)
