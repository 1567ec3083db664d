"""``quotegen generate``: prompts from arguments or stdin, one result per line on stdout."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from quotegen.cli.options import (
    GENERATION_FLAGS,
    MODEL_OPTION,
    QUIET_OPTION,
    LoadFlags,
    UsageError,
    flag_errors,
    load_engine,
    resolve,
    write,
)
from quotegen.config import DEFAULT_BATCH_SIZE, ENV_SERVER
from quotegen.console import progress
from quotegen.text import one_line

if TYPE_CHECKING:
    from quotegen.client import Client, RemoteStream
    from quotegen.generation import Engine, TextStream
    from quotegen.schemas import GenerationResult
    from quotegen.settings import GenerationSettings


def generate(
    context: typer.Context,
    prompts: list[str] | None = typer.Argument(
        None, show_default=False, help="Prompts. None or '-': one prompt per line of stdin."
    ),
    model: str | None = MODEL_OPTION,
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per result."),
    server: str | None = typer.Option(
        None,
        "--server",
        envvar=ENV_SERVER,
        show_default=False,
        help="Send the work to a running `quotegen serve` at this URL (client mode: no model "
        "is loaded here). API key: QUOTEGEN_API_KEY.",
    ),
    batch_size: int = typer.Option(
        DEFAULT_BATCH_SIZE, "--batch-size", "-b", min=1, max=256, help="Rows decoded together."
    ),
    quiet: bool = QUIET_OPTION,
    flags: LoadFlags = LoadFlags(),
    chosen: dict[str, Any] | None = None,
) -> None:
    """Generate a quote for each prompt (arguments, or stdin lines)."""
    chosen = dict(chosen or {})
    if not server:  # before loading anything: a bad flag fails at once
        from quotegen.settings import GenerationSettings

        with flag_errors(GENERATION_FLAGS):
            GenerationSettings(**chosen)
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
        client = _client(context, server)
        with server_flag_errors():
            _run(client, chosen, prompts, from_stdin, batch_size, as_json, quiet)
        return
    engine = load_engine(resolve(model, flags, quiet=quiet), flags, quiet=quiet)
    with flag_errors(GENERATION_FLAGS):  # the model's own defaults where no flag was given
        settings = engine.settings(chosen)
    _run(engine, settings, prompts, from_stdin, batch_size, as_json, quiet)


def _run(
    engine: Engine | Client,
    settings: GenerationSettings | dict[str, Any],
    prompts: list[str] | None,
    from_stdin: bool,
    batch_size: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """The same output contract, locally (``Engine``, resolved settings) or in client mode
    (``Client``, the flags given: the server resolves them)."""
    samples = settings.get("n", 1) if isinstance(settings, dict) else settings.n
    single = not from_stdin and prompts is not None and len(prompts) == 1 and samples == 1
    if single and prompts is not None and sys.stdout.isatty() and not as_json:
        _stream_one(engine, prompts[0], settings)
        return
    if from_stdin:
        from quotegen.inputs import stdin_prompts

        source: Iterable[str] = stdin_prompts()
    else:
        source = prompts or []
    _generate_many(engine, source, settings, batch_size, as_json, quiet)


def _client(context: typer.Context, url: str) -> Client:
    """Client mode: the server's model, so the flags that choose a local one are errors
    (their environment variables are ignored)."""
    from quotegen.client import Client
    from quotegen.config import ENV_API_KEY

    local = ["model", "device", "dtype", "quantize", "allow_pickle", "trust_remote_code"]
    for name in local:
        source = context.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            raise UsageError(
                f"--{name.replace('_', '-')} chooses a local model; with --server (or "
                "QUOTEGEN_SERVER) the server's model is used. Drop one of them."
            )
    return Client(url, os.environ.get(ENV_API_KEY) or None)


@contextmanager
def server_flag_errors() -> Iterator[None]:
    """The server's refusal of a setting, as the usage error a local run would give."""
    from quotegen.errors import ServerError

    try:
        yield
    except ServerError as exc:
        field = (exc.param or "").removeprefix("settings").lstrip(".")
        if exc.status != 422 or not (exc.param or "").startswith("settings"):
            raise
        message = exc.message.split(": ", 2)[-1].removeprefix("Value error, ")
        flag = GENERATION_FLAGS.get(field)
        raise UsageError(f"{flag}: {message}" if flag else message) from exc


def _stream_one(
    engine: Engine | Client, prompt: str, settings: GenerationSettings | dict[str, Any]
) -> None:
    """Print one quote token by token on a terminal, ending exactly as the batch path would."""
    from quotegen.text import CleanStream, clean_text

    clean = settings.get("clean", True) if isinstance(settings, dict) else settings.clean
    from quotegen.client import Client

    stream: TextStream | RemoteStream
    if isinstance(engine, Client):
        assert isinstance(settings, dict)
        stream = engine.stream(prompt, settings)
    else:
        assert not isinstance(settings, dict)
        stream = engine.stream(prompt, settings)
    printer = CleanStream(lambda raw: one_line(clean_text(raw) if clean else raw))
    write(printer.feed(stream.prompt))
    for piece in stream:
        write(printer.feed(piece))
    assert stream.result is not None
    write(printer.finish(one_line(_as_dict(stream.result)["text"])) + "\n")


def _as_dict(result: GenerationResult | dict[str, Any]) -> dict[str, Any]:
    """A result as JSON data: a local result dumped, a server's as it came."""
    return result if isinstance(result, dict) else result.model_dump(mode="json")


def _line(result: dict[str, Any], as_json: bool) -> str:
    if as_json:  # the same bytes for a local result and a server's
        return json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n"
    return one_line(result["text"]) + "\n"


def _generate_many(
    engine: Engine | Client,
    source: Iterable[str],
    settings: GenerationSettings | dict[str, Any],
    batch_size: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Prompts in, one line per result out, in input order, each as soon as it is ready."""
    from quotegen.client import Client, send_ordered

    results: Iterator[GenerationResult | dict[str, Any]]
    if isinstance(engine, Client):
        assert isinstance(settings, dict)
        results = send_ordered(engine, source, settings, batch_size=batch_size)
    else:
        from quotegen.batching import generate_ordered

        assert not isinstance(settings, dict)
        results = generate_ordered(engine, source, settings, batch_size=batch_size)
    total = len(source) if isinstance(source, list) else None
    with progress("Generating", show=not quiet and total != 1, total=total) as bar:
        for result in map(_as_dict, results):
            write(_line(result, as_json))
            if result["sample"] == result["settings"]["n"] - 1:
                bar.update(result["index"] + 1, total)
