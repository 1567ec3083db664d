"""``quotegen train`` (fine-tune, or a small model from scratch) and ``quotegen eval``
(perplexity on a quotes file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from quotegen.cli.options import (
    TRAINING,
    LoadFlags,
    ModelOpt,
    QuietOpt,
    Target,
    declared_values,
    flag_errors,
    write,
)
from quotegen.console import print_note, progress

TextColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--text-column", show_default=False, help="Column of .jsonl/.csv \\[default: text]."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]


def train(
    context: typer.Context,
    data: Annotated[
        Path,
        typer.Argument(
            help="Quotes: .txt (one per line), .jsonl or .csv; .jsonl rows may also be "
            'conversations ({"messages": [...]}, the last reply learned).',
        ),
    ],
    text_column: TextColumnOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune a model on a quotes file (whole, or a LoRA adapter), or train a small one
    from scratch."""
    from quotegen.inputs import read_examples
    from quotegen.settings import TrainConfig
    from quotegen.training.fit import train as run_training

    flags = LoadFlags.of(context)
    with flag_errors(context):  # the training settings' flags (quotegen.config.Train)
        config = TrainConfig(
            **declared_values(context, TRAINING),
            device=flags.device,
            allow_pickle=flags.allow_pickle,
            trust_remote_code=flags.trust_remote_code,
        )
    quotes = read_examples(data, text_column)
    with progress("Training", show=not quiet) as bar:

        def update(kind: str, done: int, total: int, values: dict[str, float]) -> None:
            if kind == "epoch":
                bar.note(
                    f"epoch {done}/{total}: validation perplexity {values['val_perplexity']:.2f}"
                )
                return
            bar.update(done, total, " ".join(f"{k} {v:.3g}" for k, v in values.items()))

        report = run_training(
            config,
            quotes,
            progress=update,
            data_name=data.name,
            notify=None if quiet else bar.note,
        )
    write(report.model_dump_json() + "\n" if as_json else f"{report.out}\n")
    best = report.best_val_perplexity
    if not quiet and best is not None:
        print_note(
            f"Validation perplexity {report.initial_val_perplexity:.2f} -> {best:.2f} "
            f"(epoch {report.best_epoch}) in {report.seconds:.0f} s; saved to {report.out}"
        )
    if report.interrupted:
        print_note(f"Interrupted: the best checkpoint so far is in {report.out}")
        raise typer.Exit(130)


def evaluate(
    context: typer.Context,
    data: Annotated[Path, typer.Argument(help="Quotes: .txt (one per line), .jsonl or .csv.")],
    model: ModelOpt = None,
    text_column: TextColumnOpt = None,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", "-b", min=1, max=1024, help="Quotes scored together."),
    ] = 16,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Token-level perplexity of a model on a quotes file."""
    from quotegen.inputs import read_quotes
    from quotegen.training.evaluation import evaluate as run_evaluation

    quotes = read_quotes(data, text_column)
    loaded = Target(model, LoadFlags.of(context)).load(quiet=quiet)
    with progress("Evaluating", show=not quiet, total=len(quotes)) as bar:
        done = 0

        def on_batch(rows: int) -> None:
            nonlocal done
            done += rows
            bar.update(done, len(quotes))

        report = run_evaluation(
            loaded, quotes, data=str(data), batch_size=batch_size, on_batch=on_batch
        )
    write(report.model_dump_json() + "\n" if as_json else f"{report.perplexity:.4f}\n")
