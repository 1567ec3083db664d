"""``quotegen batch``: a prompts file in, a results file out; resumable; here or on Ray."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from quotegen.cli.options import (
    CPUS_PER_REPLICA_OPTION,
    GENERATION_FLAGS,
    GPUS_PER_REPLICA_OPTION,
    MODEL_OPTION,
    QUIET_OPTION,
    RAY_OPTION,
    REPLICAS_OPTION,
    LoadFlags,
    UsageError,
    check_ray_flags,
    flag_errors,
    load_engine,
    resolve,
)
from quotegen.console import print_note, progress

if TYPE_CHECKING:
    from quotegen.references import ModelRef

DEFAULT_CHUNK = 32


def batch(
    input_file: Path = typer.Argument(
        ...,
        metavar="INPUT",
        show_default=False,
        help='.txt (a prompt per line), .jsonl ({"prompt", "settings", "custom_id"} or '
        "OpenAI batch requests for /v1/completions) or .parquet (a prompt column).",
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        show_default=False,
        help=".jsonl or .parquet. Run the same command again to resume.",
    ),
    model: str | None = MODEL_OPTION,
    batch_size: int = typer.Option(
        DEFAULT_CHUNK,
        "--batch-size",
        "-b",
        min=1,
        max=256,
        help="Input lines generated together (each chunk is one batch, so results never "
        "depend on how a run was split).",
    ),
    ray_address: str | None = RAY_OPTION,
    replicas: int = REPLICAS_OPTION,
    cpus_per_replica: float = CPUS_PER_REPLICA_OPTION,
    gpus_per_replica: float = GPUS_PER_REPLICA_OPTION,
    quiet: bool = QUIET_OPTION,
    flags: LoadFlags = LoadFlags(),
    chosen: dict[str, Any] | None = None,
) -> None:
    """Generate for every line of a prompts file into a results file; resumable."""
    from quotegen.filejobs import (
        Manifest,
        ModelDefaults,
        ResultsFile,
        chunks,
        file_digest,
        manifest_path,
        now,
        read_jobs,
        rows_per_line,
        run_local,
    )
    from quotegen.locating import locate_or_fall_back
    from quotegen.model import declared_defaults
    from quotegen.settings import GenerationSettings

    chosen = dict(chosen or {})
    with flag_errors(GENERATION_FLAGS):
        GenerationSettings(**chosen)
    if output.resolve() == input_file.resolve():
        raise UsageError("OUTPUT must not be the INPUT file.")
    check_ray_flags(ray_address, replicas, cpus_per_replica, gpus_per_replica)

    jobs = read_jobs(input_file)
    ref = resolve(model, flags, quiet=quiet)
    ref, path = locate_or_fall_back(
        ref, allow_pickle=flags.allow_pickle, notify=None if quiet else print_note
    )
    resolver = ModelDefaults(declared_defaults(path))
    saved = manifest_path(output)
    if "seed" not in chosen:
        # A new run draws its seed once; a resumed run keeps the one it drew.
        previous = _saved_seed(saved)
        if previous is None:
            import secrets

            from quotegen.config import MAX_SEED

            previous = secrets.randbelow(MAX_SEED)
        chosen["seed"] = previous
    with flag_errors(GENERATION_FLAGS):
        base = resolver.settings(chosen)
    manifest = Manifest(
        input_sha256=file_digest(input_file),
        lines=len(jobs),
        model=f"{ref}@{path.name}" if ref.repo_id else str(ref),
        settings=base.model_dump(mode="json"),
        batch_size=batch_size,
        created=now(),
    )
    results = ResultsFile(output, manifest)
    done = results.open(rows_per_line(jobs, resolver, chosen))
    if done == len(jobs):
        results.close(complete=True)
        if not quiet:
            print_note(f"{output}: all {len(jobs)} lines are done.")
        return
    if done and not quiet:
        print_note(f"Resuming {output}: {done} of {len(jobs)} lines are done.")
    # Whole chunks are generated again from the first unfinished one (the same batches as an
    # uninterrupted run); the lines already written are not written twice.
    pending = [c for c in chunks(jobs, batch_size) if c[-1].index >= done]
    created = results.manifest.created
    complete = False
    started = time.monotonic()
    written = done
    try:
        if ray_address is None:
            engine = load_engine(ref, flags, quiet=quiet)
            started = time.monotonic()
            produced = run_local(engine, pending, chosen, created)
        else:
            produced = _on_ray(ray_address, ref, flags, pending, chosen, created, replicas,
                               cpus_per_replica, gpus_per_replica)  # fmt: skip
        with progress("Generating", show=not quiet, total=len(jobs)) as bar:
            bar.update(done, len(jobs))
            for chunk, outputs in zip(pending, produced, strict=False):
                for job, rows in zip(chunk, outputs, strict=True):
                    if job.index < done:
                        continue
                    results.append(rows)
                    written += 1
                rate = (written - done) / max(1e-9, time.monotonic() - started)
                bar.update(written, len(jobs), f"{rate:.1f} lines/s")
        complete = written == len(jobs)
    finally:
        results.close(complete=complete)
    if not quiet:
        seconds = time.monotonic() - started
        print_note(f"{output}: {written - done} lines in {seconds:.1f} s ({len(jobs)} in all).")


def _saved_seed(saved: Path) -> int | None:
    import json

    try:
        seed = json.loads(saved.read_text("utf-8"))["settings"]["seed"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return seed if isinstance(seed, int) else None


def _on_ray(
    address: str,
    ref: ModelRef,
    flags: LoadFlags,
    pending: list[Any],
    chosen: dict[str, Any],
    created: int,
    replicas: int,
    cpus: float,
    gpus: float,
) -> Any:
    """The chunks' outputs from an actor pool on Ray; Ray is stopped when they are done."""
    from quotegen.cluster import connect, disconnect, replica_device, run_on_ray

    started = connect(address)
    try:
        fields = ref.to_fields()
        yield from run_on_ray(
            fields,
            {**asdict(flags), "device": replica_device(gpus)},
            pending,
            chosen,
            created,
            replicas=replicas,
            cpus_per_replica=cpus,
            gpus_per_replica=gpus,
            threads=max(1, int(cpus)),
        )
    finally:
        disconnect(started)
