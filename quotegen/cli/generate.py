"""``quotegen generate``: prompts from arguments or stdin, one result per line on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from quotegen.cli.options import (
    LoadFlags,
    ModelOpt,
    QuietOpt,
    Target,
    UsageError,
    chosen_settings,
    flag_errors,
    flag_for,
    write,
)
from quotegen.config import DEFAULT_BATCH_SIZE, ENV_SERVER
from quotegen.console import progress
from quotegen.text import one_line

if TYPE_CHECKING:
    from quotegen.cli.client import Client


def generate(
    context: typer.Context,
    prompts: Annotated[
        list[str] | None,
        typer.Argument(
            show_default=False, help="Prompts. None or '-': one prompt per line of stdin."
        ),
    ] = None,
    model: ModelOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one object per result.")
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar=ENV_SERVER,
            show_default=False,
            help="Send the work to a running `quotegen serve` at this URL (client mode: no "
            "model is loaded here). API key: QUOTEGEN_API_KEY.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, max=256, help="Rows decoded together.")
    ] = DEFAULT_BATCH_SIZE,
    quiet: QuietOpt = False,
) -> None:
    """Generate a quote for each prompt (arguments, or stdin lines); with --about, quotes
    about a topic (alone: one quote; prompts start the quotes)."""
    chosen = chosen_settings(context, check=not server)
    if not prompts and chosen.get("about") and sys.stdin.isatty():
        prompts = [""]  # `generate --about courage`: one quote about it, started by the model
    from_stdin = not prompts or prompts == ["-"]
    if from_stdin and sys.stdin.isatty():
        raise UsageError(
            "No prompt given: pass one as an argument or pipe prompts on stdin, one per line."
        )
    if not from_stdin and "-" in (prompts or []):
        raise UsageError("'-' (stdin) cannot be mixed with prompt arguments.")
    if "seed" not in chosen:
        # One base seed for the whole run, reported in --json, so any result can be redone.
        import secrets

        from quotegen.config import MAX_SEED

        chosen["seed"] = secrets.randbelow(MAX_SEED)

    if server:
        from quotegen.cli.client import RemoteQuotes

        remote = RemoteQuotes(_client(context, server), chosen)
        with server_flag_errors(context):
            _run(remote, prompts, from_stdin, batch_size, as_json, quiet)
        return
    from quotegen.engine.scheduler import LocalQuotes

    engine = Target(model, LoadFlags.of(context)).engine(quiet=quiet)
    with flag_errors(context):  # the model's own defaults where no flag was given
        settings = engine.settings(chosen)
    _run(LocalQuotes(engine, settings), prompts, from_stdin, batch_size, as_json, quiet)


class QuoteStream(Protocol):
    prompt: str
    result: dict[str, Any] | None

    def __iter__(self) -> Iterator[str]: ...


class Quotes(Protocol):
    """Where results come from: a local engine (``scheduler.LocalQuotes``) or a server
    (``client.RemoteQuotes``); both give JSON records, so the output is the same bytes."""

    samples: int
    clean: bool

    def results(self, prompts: Iterable[str], batch_size: int) -> Iterator[dict[str, Any]]: ...

    def stream(self, prompt: str) -> QuoteStream: ...


def _run(
    quotes: Quotes,
    prompts: list[str] | None,
    from_stdin: bool,
    batch_size: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """The same output contract, locally or in client mode."""
    single = not from_stdin and prompts is not None and len(prompts) == 1 and quotes.samples == 1
    if single and prompts is not None and sys.stdout.isatty() and not as_json:
        _stream_one(quotes, prompts[0])
        return
    if from_stdin:
        from quotegen.inputs import stdin_prompts

        source: Iterable[str] = stdin_prompts()
    else:
        source = prompts or []
    _generate_many(quotes, source, batch_size, as_json, quiet)


def _client(context: typer.Context, url: str) -> Client:
    """Client mode: the server's model, so the flags that choose a local one are errors
    (their environment variables are ignored)."""
    from quotegen.cli.client import Client
    from quotegen.config import ENV_API_KEY, env

    local = ["model", "device", "dtype", "quantize", "allow_pickle", "trust_remote_code"]
    for name in local:
        source = context.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            raise UsageError(
                f"--{name.replace('_', '-')} chooses a local model; with --server (or "
                "QUOTEGEN_SERVER) the server's model is used. Drop one of them."
            )
    return Client(url, env(ENV_API_KEY))


@contextmanager
def server_flag_errors(context: typer.Context) -> Iterator[None]:
    """The server's refusal of a setting, as the usage error a local run would give."""
    from quotegen.errors import ServerError

    try:
        yield
    except ServerError as exc:
        field = (exc.param or "").removeprefix("settings").lstrip(".")
        if exc.status != 422 or not (exc.param or "").startswith("settings"):
            raise
        message = exc.message.split(": ", 2)[-1].removeprefix("Value error, ")
        flag = flag_for(context, field)
        raise UsageError(f"{flag}: {message}" if flag else message) from exc


def _stream_one(quotes: Quotes, prompt: str) -> None:
    """Print one quote token by token on a terminal, ending exactly as the batch path would."""
    from quotegen.text import CleanStream, clean_text

    clean = quotes.clean
    stream = quotes.stream(prompt)
    printer = CleanStream(lambda raw: one_line(clean_text(raw) if clean else raw))
    write(printer.feed(stream.prompt))
    for piece in stream:
        write(printer.feed(piece))
    assert stream.result is not None
    write(printer.finish(one_line(stream.result["text"])) + "\n")


def _line(result: dict[str, Any], as_json: bool) -> str:
    if as_json:  # the same bytes for a local result and a server's
        return json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n"
    return one_line(result["text"]) + "\n"


def _generate_many(
    quotes: Quotes,
    source: Iterable[str],
    batch_size: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Prompts in, one line per result out, in input order, each as soon as it is ready."""
    total = len(source) if isinstance(source, list) else None
    with progress("Generating", show=not quiet and total != 1, total=total) as bar:
        for result in quotes.results(source, batch_size):
            write(_line(result, as_json))
            if result["sample"] == result["settings"]["n"] - 1:
                bar.update(result["index"] + 1, total)
