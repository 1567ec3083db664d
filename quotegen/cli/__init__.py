"""The ``quotegen`` command line: one module per command (group), this one ties them together.

Commands parse flags, call the core and print; errors raised in the core are presented here
as one line on stderr with an exit code. torch and transformers are imported only inside
commands that need them, so ``quotegen --help`` and ``--version`` stay instant.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from typing import Annotated, Any, NoReturn

import typer

from quotegen import __version__
from quotegen.cli.batch import batch
from quotegen.cli.download import download, models
from quotegen.cli.generate import generate
from quotegen.cli.options import (
    ClickException,
    ModelCommand,
    PipeClosed,
    ServeCommand,
    SettingsCommand,
    TrainCommand,
    UsageError,
    examples,
)
from quotegen.cli.serve import serve
from quotegen.cli.train import evaluate, train
from quotegen.cli.upload import upload
from quotegen.config import PROMPT_READER, debug_enabled
from quotegen.console import print_error, stderr_console
from quotegen.errors import QuotegenError

app = typer.Typer(
    name="quotegen",
    help="Generate short texts (quotes, one-liners) with Hugging Face causal language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"quotegen {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Generate short texts (quotes, one-liners) with Hugging Face causal language models."""


app.command(
    cls=SettingsCommand,
    epilog=examples(
        'quotegen generate "life is"',
        "printf 'love is\\nwork is\\n' | quotegen generate --json --seed 42",
        'quotegen generate -n 3 --temperature 0.7 --model ./my-model "friendship is"',
    ),
)(generate)
app.command(
    cls=SettingsCommand,
    epilog=examples(
        "quotegen batch prompts.txt -o results.jsonl --seed 1",
        "quotegen batch requests.jsonl -o answers.jsonl      # OpenAI batch-API lines in and out",
        "quotegen batch prompts.parquet -o results.parquet --ray local --replicas 2",
        "quotegen batch prompts.txt -o results.jsonl --ray ray://head:10001 --replicas 8",
    ),
)(batch)
app.command(
    cls=ServeCommand,
    epilog=examples(
        "quotegen serve",
        "quotegen serve --model ./my-model --port 9000 --api-key s3cret",
        "quotegen serve --host 0.0.0.0 --cors-origin https://example.org --max-batch-size 32",
    ),
)(serve)
app.command(
    epilog=examples(
        "quotegen download",
        "quotegen download gpt2 --revision main",
        "quotegen download org/model@v1 --local-dir ./model --include '*.json'",
    )
)(download)
app.command(epilog=examples("quotegen models", "quotegen models --json"))(models)
app.command(
    epilog=examples(
        "quotegen upload ./my-quotes me/my-quotes",
        "quotegen upload ./my-quotes me/my-quotes --private --revision v2 -m 'Retrained'",
    )
)(upload)
app.command(
    cls=TrainCommand,
    epilog=examples(
        "quotegen train quotes.txt --out ./my-quotes --base gpt2 --epochs 1",
        "quotegen train quotes.jsonl --text-column quote --out ./tiny --from-scratch --n-layer 2",
        "quotegen train fortunes.txt --out ./mini --from-scratch --epochs 12 --seed 1",
    ),
)(train)
app.command(
    cls=ModelCommand,
    name="eval",
    epilog=examples(
        "quotegen eval heldout.txt --model ./my-quotes",
        "quotegen eval quotes.jsonl --model nandinib1999/quote-generator@refs/pr/1 --json",
    ),
)(evaluate)


def _usage_message(exc: Any) -> str:
    command = exc.ctx.command_path if exc.ctx is not None else "quotegen"
    return f"{exc.format_message()} (see '{command} --help')"


def _exit(code: int) -> NoReturn:
    """Leave with ``code``. While a prompt reader may still be blocked on stdin (Ctrl-C, or an
    error mid-stream), skip interpreter shutdown: if stdin closes during finalization, the woken
    daemon thread is torn down inside torch's C++ runtime and the process aborts
    ("terminate called without an active exception") instead of exiting with ``code``."""
    if not any(t.name == PROMPT_READER and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _quiet_broken_pipe() -> NoReturn:
    # The reader went away (e.g. `| head -1`): stop quietly, and keep Python from complaining
    # about the unflushable stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    _exit(0)


def _defer_rich_markdown() -> None:
    """Help only: typer's help renderer imports ``rich.markdown`` (and markdown-it, ~40 ms,
    a third of ``--help``) for a markup mode quotegen does not use. A stand-in takes its place
    for this process and loads the real module only if something actually uses it."""
    import types

    if "rich.markdown" in sys.modules:
        return

    def real() -> Any:
        if sys.modules.get("rich.markdown") is stand_in:
            del sys.modules["rich.markdown"]
        return importlib.import_module("rich.markdown")

    class Markdown:
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return real().Markdown(*args, **kwargs)

    def attribute(name: str) -> Any:
        if name.startswith("__"):  # the import system probing (__path__, ...): not ours
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in = types.ModuleType("rich.markdown")
    stand_in.Markdown = Markdown  # type: ignore[attr-defined]
    stand_in.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules["rich.markdown"] = stand_in


def main() -> None:
    """Console-script entry point: present errors as one line and map them to exit codes."""
    if len(sys.argv) < 2 or not {"-h", "--help"}.isdisjoint(sys.argv[1:]):
        _defer_rich_markdown()
    try:
        result = app(standalone_mode=False, prog_name="quotegen")
    except UsageError as exc:
        print_error(_usage_message(exc))
        _exit(2)
    except (KeyboardInterrupt, typer.Abort):
        stderr_console().print("Interrupted.")
        _exit(130)
    except (BrokenPipeError, PipeClosed):
        _quiet_broken_pipe()
    except QuotegenError as exc:
        if debug_enabled():
            raise
        print_error(exc.message)
        _exit(exc.exit_code)
    except ClickException as exc:
        print_error(exc.format_message())  # type: ignore[attr-defined]
        _exit(exc.exit_code)  # type: ignore[attr-defined]
    except Exception as exc:
        if debug_enabled():
            raise
        print_error(
            f"Unexpected {type(exc).__name__}: {exc}. Set QUOTEGEN_DEBUG=1 for the traceback "
            "and please report it."
        )
        _exit(1)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
    _exit(result if isinstance(result, int) else 0)
