"""``quotegen train`` (fine-tune, or a small model from scratch) and ``quotegen eval``
(perplexity on a quotes file)."""

from __future__ import annotations

from pathlib import Path

import typer

from quotegen.cli.options import (
    AllowPickleOpt,
    DeviceOpt,
    LoadFlags,
    ModelOpt,
    QuietOpt,
    Target,
    TrustCodeOpt,
    flag_errors,
    model_fields,
    write,
)
from quotegen.config import TRAIN
from quotegen.console import print_note, progress


def train(
    ctx: typer.Context,
    data: Path = typer.Argument(
        ...,
        help="Quotes: .txt (one per line), .jsonl or .csv; .jsonl rows may also be "
        'conversations ({"messages": [...]}, the last reply learned).',
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to save the model in."),
    base: str | None = typer.Option(
        None, "--base", show_default=False, help="Model to fine-tune (any --model reference)."
    ),
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Train a small GPT-2 and its tokenizer on DATA."
    ),
    text_column: str | None = typer.Option(
        None, "--text-column", show_default=False, help="Column of .jsonl/.csv \\[default: text]."
    ),
    epochs: int = typer.Option(TRAIN.epochs, "--epochs"),
    batch_size: int = typer.Option(TRAIN.batch_size, "--batch-size", "-b"),
    max_length: int = typer.Option(TRAIN.max_length, "--max-length", help="Tokens per quote."),
    learning_rate: float = typer.Option(TRAIN.learning_rate, "--learning-rate", "--lr"),
    warmup_ratio: float = typer.Option(TRAIN.warmup_ratio, "--warmup"),
    weight_decay: float = typer.Option(TRAIN.weight_decay, "--weight-decay"),
    grad_clip: float = typer.Option(TRAIN.grad_clip, "--grad-clip"),
    val_split: float = typer.Option(TRAIN.val_split, "--val-split"),
    seed: int = typer.Option(TRAIN.seed, "--seed"),
    vocab_size: int = typer.Option(TRAIN.vocab_size, "--vocab-size"),
    n_layer: int = typer.Option(TRAIN.n_layer, "--n-layer"),
    n_head: int = typer.Option(TRAIN.n_head, "--n-head"),
    n_embd: int = typer.Option(TRAIN.n_embd, "--n-embd"),
    context: int = typer.Option(TRAIN.context, "--context"),
    dropout: float = typer.Option(TRAIN.dropout, "--dropout"),
    tokenizer: str = typer.Option(
        TRAIN.tokenizer,
        "--tokenizer",
        help="From scratch: bpe (byte-level BPE, --vocab-size) or words (whole dictionary "
        "words from /usr/share/dict, rare words spelled).",
    ),
    min_count: int = typer.Option(
        TRAIN.min_count, "--min-count", help="--tokenizer words: fewest sightings of a word."
    ),
    max_words: int | None = typer.Option(
        TRAIN.max_words,
        "--max-words",
        show_default=False,
        help="--tokenizer words: keep only the N most frequent words \\[default: all].",
    ),
    spelling_pieces: int = typer.Option(
        TRAIN.spelling_pieces,
        "--spelling-pieces",
        help="--tokenizer words: spell the other words with up to N sub-word pieces (BPE "
        "merges learned on them) besides characters; the model never writes them.",
    ),
    vocab_from: Path | None = typer.Option(
        None,
        "--vocab-from",
        show_default=False,
        help="--tokenizer words: choose the words by their counts in this file (one text a "
        "line) \\[default: DATA's training split].",
    ),
    save_dtype: str = typer.Option(
        TRAIN.save_dtype, "--save-dtype", help="float32, float16 or bfloat16 weights on disk."
    ),
    mixed_precision: str = typer.Option(
        TRAIN.mixed_precision,
        "--mixed-precision",
        help="no, or bf16: matrix products in bfloat16 (torch autocast), weights kept in "
        "float32; faster where the processor has bfloat16 units (AMX, or a recent GPU).",
    ),
    lora: bool = typer.Option(
        False, "--lora", help="Train a LoRA adapter (peft) on --base; OUT is an adapter folder."
    ),
    lora_r: int = typer.Option(TRAIN.lora_r, "--lora-r", help="LoRA rank."),
    lora_alpha: int = typer.Option(TRAIN.lora_alpha, "--lora-alpha", help="LoRA alpha."),
    lora_dropout: float = typer.Option(TRAIN.lora_dropout, "--lora-dropout"),
    lora_targets: str = typer.Option(
        TRAIN.lora_targets,
        "--lora-targets",
        help="Modules to adapt: auto, all-linear, or names (q_proj,k_proj,v_proj,o_proj).",
    ),
    lora_init: Path | None = typer.Option(
        None,
        "--lora-init",
        show_default=False,
        help="Start the LoRA adapter from this adapter folder's weights (train it further).",
    ),
    frame_token: str | None = typer.Option(
        None,
        "--frame-token",
        show_default=False,
        help="Token before and after every quote, where generation stops (e.g. "
        "'<|endoftext|>'); drops the base's chat template.",
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", show_default=False, help="Stop after N steps \\[default: all]."
    ),
    checkpoint_every: int = typer.Option(
        TRAIN.checkpoint_every,
        "--checkpoint-every",
        help="Steps between resumable checkpoints (0: none); the same command resumes.",
    ),
    device: DeviceOpt = "auto",
    allow_pickle: AllowPickleOpt = False,
    trust_remote_code: TrustCodeOpt = False,
    as_json: bool = typer.Option(False, "--json", help="Print the training report as JSON."),
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune a model on a quotes file (whole, or a LoRA adapter), or train a small one
    from scratch."""
    from quotegen.inputs import read_examples
    from quotegen.settings import TrainConfig
    from quotegen.training.fit import train as run_training

    with flag_errors(ctx):  # the flags are TrainConfig's fields, by the same names
        config = TrainConfig(**model_fields(ctx, TrainConfig.model_fields))
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
    data: Path = typer.Argument(..., help="Quotes: .txt (one per line), .jsonl or .csv."),
    model: ModelOpt = None,
    text_column: str | None = typer.Option(None, "--text-column", show_default=False),
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, max=1024),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
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
