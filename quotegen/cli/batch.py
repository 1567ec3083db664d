"""``quotegen batch``: a prompts file in, a results file out; resumable; here or on Ray."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from quotegen.cli.options import (
    CpusOpt,
    GpusOpt,
    LoadFlags,
    ModelOpt,
    QuietOpt,
    RayOpt,
    ReplicasOpt,
    Target,
    UsageError,
    check_ray_flags,
    chosen_settings,
    flag_errors,
)
from quotegen.console import ProgressBar, print_note, progress

DEFAULT_CHUNK = 32


def batch(
    context: typer.Context,
    input_file: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            show_default=False,
            help='.txt (a prompt per line), .jsonl ({"prompt", "settings", "custom_id"} or '
            "OpenAI batch requests for /v1/completions) or .parquet (a prompt column).",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            show_default=False,
            help=".jsonl or .parquet. Run the same command again to resume.",
        ),
    ],
    model: ModelOpt = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            "-b",
            min=1,
            max=256,
            help="Input lines generated together (each chunk is one batch, so results never "
            "depend on how a run was split).",
        ),
    ] = DEFAULT_CHUNK,
    quiet: QuietOpt = False,
    ray_address: RayOpt = None,
    replicas: ReplicasOpt = 1,
    cpus_per_replica: CpusOpt = 1.0,
    gpus_per_replica: GpusOpt = 0.0,
) -> None:
    """Generate for every line of a prompts file into a results file; resumable."""
    from quotegen.jobs.runner import RayPlan, run_file_job

    chosen = chosen_settings(context)
    if output.resolve() == input_file.resolve():
        raise UsageError("OUTPUT must not be the INPUT file.")
    check_ray_flags(ray_address, replicas, cpus_per_replica, gpus_per_replica)
    flags = LoadFlags.of(context)
    target = Target(model, flags)
    ray = None
    if ray_address is not None:
        ray = RayPlan(ray_address, replicas, cpus_per_replica, gpus_per_replica)

    with ExitStack() as stack, flag_errors(context):
        bars: list[ProgressBar] = []  # started at the first report: after loading's spinner

        def report_progress(done: int, total: int, rate: str) -> None:
            if not bars:
                bars.append(stack.enter_context(progress("Generating", show=not quiet)))
            bars[0].update(done, total, rate)

        report = run_file_job(
            input_file,
            output,
            target.ref,
            chosen,
            batch_size=batch_size,
            local=lambda ref: target.engine(quiet=quiet, ref=ref),
            load=asdict(flags),
            ray=ray,
            notify=None if quiet else print_note,
            progress=report_progress,
        )
    if quiet:
        return
    if report.written == report.done_before:
        print_note(f"{output}: all {report.lines} lines are done.")
        return
    print_note(
        f"{output}: {report.written - report.done_before} lines in {report.seconds:.1f} s "
        f"({report.lines} in all)."
    )
