"""The ``quotegen`` command line: flags in, calls into the core, data out.

No model logic lives here. torch and transformers are imported only inside commands that
need them, so ``quotegen --help`` and ``--version`` stay instant.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from quotegen import __version__
from quotegen.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_HOST,
    DEFAULT_HUB_MODEL,
    DEFAULT_HUB_REVISION,
    DEFAULT_PORT,
    ENV_API_KEY,
    ENV_DEVICE,
    ENV_DTYPE,
    ENV_HOST,
    ENV_MODEL,
    ENV_PORT,
    ENV_QUANTIZE,
    debug_enabled,
)
from quotegen.console import print_error, print_note, stderr_console, stderr_is_terminal
from quotegen.errors import InputError, QuotegenError

if TYPE_CHECKING:
    from quotegen.generation import Generator
    from quotegen.model import ModelRef
    from quotegen.schemas import GenerationResult, GenerationSettings

# Recent typer vendors its own click; reach its exception classes through a public name so this
# works whichever click typer uses.
_click_exceptions: Any = importlib.import_module(typer.BadParameter.__module__)
UsageError: type[Exception] = _click_exceptions.UsageError
ClickException: type[Exception] = _click_exceptions.ClickException

app = typer.Typer(
    name="quotegen",
    help="Generate short texts (quotes, one-liners) with Hugging Face causal language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _examples(*lines: str) -> str:
    """An epilog of copy-pasteable examples (blank lines keep rich from joining them)."""
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(f"  [cyan]{line}[/cyan]" for line in lines)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"quotegen {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Generate short texts (quotes, one-liners) with Hugging Face causal language models."""


# -- shared options ---------------------------------------------------------------------------

MODEL_OPTION = typer.Option(
    None,
    "--model",
    "-m",
    envvar=ENV_MODEL,
    show_default=False,
    help="Hub repo id (org/name[@revision]), local directory, or quotegen-mini. "
    "Default: the Hub quote model if cached, else the bundled model.",
)
DEVICE_OPTION = typer.Option(
    "auto", "--device", envvar=ENV_DEVICE, help="auto (cuda > mps > cpu), cpu, cuda[:N] or mps."
)
DTYPE_OPTION = typer.Option(
    "auto", "--dtype", envvar=ENV_DTYPE, help="auto, float32, float16 or bfloat16."
)
QUANTIZE_OPTION = typer.Option(
    "none",
    "--quantize",
    envvar=ENV_QUANTIZE,
    help="none, or int8: dynamic int8 linear layers (CPU; faster, slightly less accurate).",
)
ALLOW_PICKLE_OPTION = typer.Option(
    False,
    "--allow-pickle",
    help="Allow pickle (.bin) weights, which can run code. Trusted models only.",
)
TRUST_CODE_OPTION = typer.Option(
    False, "--trust-remote-code", help="Run custom model code from the repo. Trusted models only."
)

_FLAG_NAMES = {
    "max_new_tokens": "--max-new-tokens",
    "min_new_tokens": "--min-new-tokens",
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "repetition_penalty": "--repetition-penalty",
    "n": "-n",
    "seed": "--seed",
    "stop": "--stop",
}


def _settings(**given: Any) -> GenerationSettings:
    """Build settings from the flags the user gave; range errors become usage errors."""
    from pydantic import ValidationError

    from quotegen.schemas import GenerationSettings

    try:
        return GenerationSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        flag = _FLAG_NAMES.get(field)
        raise UsageError(f"{flag}: {message}" if flag else message) from exc


def _resolve(
    model: str | None, *, device: str, dtype: str, quiet: bool, quantize: str = "none"
) -> ModelRef:
    """Check --device/--dtype/--quantize, resolve the model reference, and say when the
    bundled one is used."""
    from quotegen.config import BUNDLED_MODEL_NAME
    from quotegen.model import check_quantize, choose_device, choose_dtype, resolve_model

    # A bad --device/--dtype/--quantize fails before anything else.
    torch_device = choose_device(device)
    check_quantize(quantize, torch_device, choose_dtype(dtype, torch_device))
    ref = resolve_model(model)
    if ref.bundled and not model and not quiet:
        print_note(
            f"Using the bundled model {BUNDLED_MODEL_NAME}. For the full GPT-2 quote model, "
            f"run: quotegen download ({DEFAULT_HUB_MODEL})"
        )
    return ref


def _load_options(
    device: str,
    dtype: str,
    quantize: str,
    allow_pickle: bool,
    trust_remote_code: bool,
    quiet: bool,
) -> dict[str, Any]:
    """The loading flags every model-using command shares, as ``_load_generator`` keywords."""
    return {
        "device": device,
        "dtype": dtype,
        "quantize": quantize,
        "allow_pickle": allow_pickle,
        "trust_remote_code": trust_remote_code,
        "quiet": quiet,
    }


def _load_generator(
    ref: ModelRef,
    *,
    device: str,
    dtype: str,
    allow_pickle: bool,
    trust_remote_code: bool,
    quiet: bool,
    quantize: str = "none",
) -> Generator:
    """Load the model (one shared path for every command) behind a status line."""
    from contextlib import nullcontext

    from quotegen.generation import Generator
    from quotegen.model import load_model

    show = stderr_is_terminal() and not quiet
    status = stderr_console().status(f"Loading {ref}…") if show else nullcontext()
    with status:
        loaded = load_model(
            ref,
            device=device,
            dtype=dtype,
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
            quantize=quantize,
        )
    return Generator(loaded)


def _stdin_lines() -> Iterator[bytes]:
    """stdin's lines, read from the file descriptor itself where there is one.

    Prompts are read on a background thread (so lines join a running batch as they arrive);
    a thread blocked inside ``sys.stdin.buffer`` at exit (Ctrl-C) holds the buffer's lock, and
    Python aborts the process at shutdown. ``os.read`` holds no such lock.
    """
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        yield from sys.stdin.buffer  # an in-memory stdin (tests): no descriptor, no blocking
        return
    pending: list[bytes] = []
    while chunk := os.read(fd, 1 << 16):
        *complete, rest = chunk.split(b"\n")
        for part in complete:
            pending.append(part)
            yield b"".join(pending) + b"\n"
            pending.clear()
        if rest:
            pending.append(rest)
    if pending:
        yield b"".join(pending)


def _stdin_prompts() -> Iterator[str]:
    """One prompt per stdin line; invalid UTF-8 is an error naming the line."""
    for number, raw in enumerate(_stdin_lines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"Line {number} of stdin is not valid UTF-8 (byte {exc.start + 1}). "
                "Convert it first, e.g. with iconv."
            ) from exc
        yield line.rstrip("\r\n")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """Text mode prints one line per result, whatever the model generated.

    Line breaks become spaces and other control characters are dropped, so generated bytes can
    neither break the one-line-per-result contract nor send escape sequences to a terminal.
    ``--json`` keeps the exact text.
    """
    return _CONTROL.sub("", " ".join(text.replace("\t", " ").splitlines()))


class _PipeClosed(Exception):
    """stdout's reader went away; not an OSError, so typer's click cannot swallow it."""


def _write(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise _PipeClosed from exc


def _stream_one(generator: Generator, prompt: str, settings: GenerationSettings) -> None:
    """Print one quote token by token on a terminal, ending exactly as the batch path would."""
    from quotegen.generation import CleanStream, clean_text

    (row,) = generator.prepare([prompt], settings)
    stream = CleanStream(lambda raw: one_line(clean_text(raw) if settings.clean else raw))
    row.on_text = lambda piece: _write(stream.feed(piece))
    _write(stream.feed(row.prompt))
    for _ in generator.steps([row]):
        pass
    _write(stream.finish(one_line(generator.result(row).text)) + "\n")


def _print_results(results: list[GenerationResult], as_json: bool) -> None:
    lines = [r.model_dump_json() if as_json else one_line(r.text) for r in results]
    _write("".join(line + "\n" for line in lines))


@app.command(
    epilog=_examples(
        'quotegen generate "life is"',
        "printf 'love is\\nwork is\\n' | quotegen generate --json --seed 42",
        'quotegen generate -n 3 --temperature 0.7 --model ./my-model "friendship is"',
    )
)
def generate(
    prompts: list[str] | None = typer.Argument(
        None, show_default=False, help="Prompts. None or '-': one prompt per line of stdin."
    ),
    model: str | None = MODEL_OPTION,
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", "-t", show_default=False, help="Most new tokens [default: 40]."
    ),
    min_new_tokens: int | None = typer.Option(
        None, "--min-new-tokens", show_default=False, help="No end-of-text before this many."
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", show_default=False, help="0 = greedy [default: 0.9]."
    ),
    top_k: int | None = typer.Option(
        None, "--top-k", show_default=False, help="0 = off [default: 50]."
    ),
    top_p: float | None = typer.Option(
        None, "--top-p", show_default=False, help="1 = off [default: 0.9]."
    ),
    repetition_penalty: float | None = typer.Option(
        None, "--repetition-penalty", show_default=False, help="1 = off [default: 1.1]."
    ),
    n: int | None = typer.Option(
        None, "-n", "--num-samples", show_default=False, help="Results per prompt [default: 1]."
    ),
    seed: int | None = typer.Option(
        None, "--seed", show_default=False, help="Reproducible sampling."
    ),
    greedy: bool = typer.Option(False, "--greedy", help="Always pick the likeliest token."),
    stop: list[str] | None = typer.Option(
        None, "--stop", show_default=False, help="Stop string (repeatable) [default: newline]."
    ),
    no_stop: bool = typer.Option(False, "--no-stop", help="No stop strings: run to max tokens."),
    raw: bool = typer.Option(False, "--raw", help="Print the text as generated, not cleaned."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per result."),
    batch_size: int = typer.Option(
        DEFAULT_BATCH_SIZE, "--batch-size", "-b", min=1, max=256, help="Rows decoded together."
    ),
    device: str = DEVICE_OPTION,
    dtype: str = DTYPE_OPTION,
    quantize: str = QUANTIZE_OPTION,
    allow_pickle: bool = ALLOW_PICKLE_OPTION,
    trust_remote_code: bool = TRUST_CODE_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Nothing on stderr but errors."),
) -> None:
    """Generate a quote for each prompt (arguments, or stdin lines)."""
    if stop and no_stop:
        raise UsageError("--stop and --no-stop cannot be used together.")
    settings = _settings(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        n=n,
        seed=seed,
        do_sample=False if greedy else None,
        stop=[] if no_stop else (stop or None),
        clean=False if raw else None,
    )
    from_stdin = not prompts or prompts == ["-"]
    if from_stdin and sys.stdin.isatty():
        raise UsageError(
            "No prompt given: pass one as an argument or pipe prompts on stdin, one per line."
        )
    if not from_stdin and "-" in (prompts or []):
        raise UsageError("'-' (stdin) cannot be mixed with prompt arguments.")

    generator = _load_generator(
        _resolve(model, device=device, dtype=dtype, quiet=quiet, quantize=quantize),
        **_load_options(device, dtype, quantize, allow_pickle, trust_remote_code, quiet),
    )
    if settings.seed is None:
        # One base seed for the whole run, reported in --json, so any result can be redone.
        import secrets

        from quotegen.schemas import MAX_SEED

        settings = settings.model_copy(update={"seed": secrets.randbelow(MAX_SEED)})

    single = not from_stdin and prompts is not None and len(prompts) == 1 and settings.n == 1
    if single and prompts is not None and sys.stdout.isatty() and not as_json:
        _stream_one(generator, prompts[0], settings)
        return
    source: Iterable[str] = _stdin_prompts() if from_stdin else (prompts or [])
    _generate_many(generator, source, settings, batch_size, as_json, quiet)


def _generate_many(
    generator: Generator,
    source: Iterable[str],
    settings: GenerationSettings,
    batch_size: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Prompts in, one line per result out, in input order, each as soon as it is ready."""
    from contextlib import nullcontext

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    total = len(source) if isinstance(source, list) else None
    show = stderr_is_terminal() and not quiet and total != 1
    progress = (
        Progress(
            SpinnerColumn(),
            TextColumn("Generating"),
            BarColumn(),
            MofNCompleteColumn(),
            console=stderr_console(),
            transient=True,
        )
        if show
        else nullcontext()
    )
    with progress as bar:
        task = bar.add_task("generate", total=total) if bar is not None else None
        for result in generator.generate_iter(source, settings, batch_size=batch_size):
            _print_results([result], as_json)
            if bar is not None and task is not None and result.sample == settings.n - 1:
                bar.update(task, completed=result.index + 1)


@app.command(
    epilog=_examples(
        "quotegen serve",
        "quotegen serve --model ./my-model --port 9000 --api-key s3cret",
        "quotegen serve --host 0.0.0.0 --cors-origin https://example.org --max-batch-size 32",
    )
)
def serve(
    model: str | None = MODEL_OPTION,
    host: str = typer.Option(
        DEFAULT_HOST, "--host", envvar=ENV_HOST, help="Interface to bind; 0.0.0.0 for all."
    ),
    port: int = typer.Option(
        DEFAULT_PORT, "--port", "-p", envvar=ENV_PORT, min=0, max=65535, help="TCP port."
    ),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar=ENV_API_KEY,
        show_default=False,
        help="Require 'Authorization: Bearer KEY' on every generation route.",
    ),
    cors_origin: list[str] | None = typer.Option(
        None,
        "--cors-origin",
        show_default=False,
        help="Allowed CORS origin (repeatable); off by default.",
    ),
    max_batch_size: int = typer.Option(
        DEFAULT_BATCH_SIZE, "--max-batch-size", min=1, max=256, help="Rows decoded together."
    ),
    max_wait_ms: float = typer.Option(
        10.0, "--max-wait-ms", min=0, max=1000, help="How long a batch waits for company."
    ),
    max_queue: int = typer.Option(
        256, "--max-queue", min=1, max=100_000, help="Queued rows before 503 + Retry-After."
    ),
    timeout: float = typer.Option(
        60.0, "--timeout", min=0.1, max=3600, help="Per-request time limit in seconds."
    ),
    max_body_bytes: int = typer.Option(
        1_048_576, "--max-body-bytes", min=1024, help="Largest request body accepted."
    ),
    max_prompt_bytes: int = typer.Option(
        16_384, "--max-prompt-bytes", min=1, help="Largest prompt accepted, in UTF-8 bytes."
    ),
    drain_timeout: float = typer.Option(
        30.0, "--drain-timeout", min=0, max=3600, help="On SIGTERM/SIGINT, seconds to finish work."
    ),
    log_level: str = typer.Option(
        "info", "--log-level", help="critical, error, warning, info or debug."
    ),
    device: str = DEVICE_OPTION,
    dtype: str = DTYPE_OPTION,
    quantize: str = QUANTIZE_OPTION,
    allow_pickle: bool = ALLOW_PICKLE_OPTION,
    trust_remote_code: bool = TRUST_CODE_OPTION,
) -> None:
    """Serve the seeds' HTTP API, an OpenAI-compatible API and a web page."""
    import logging
    import signal

    import uvicorn

    from quotegen.batching import EngineLimits
    from quotegen.server import ServerConfig, create_app

    level = log_level.strip().lower()
    if level not in {"critical", "error", "warning", "info", "debug"}:
        raise UsageError(f"--log-level: unknown level '{log_level}'.")
    # Fail fast on a bad name or device, before binding the port.
    ref = _resolve(model, device=device, dtype=dtype, quiet=False, quantize=quantize)
    logging.basicConfig(
        level=level.upper(), format="%(levelname)s:     %(message)s", stream=sys.stderr
    )
    config = ServerConfig(
        api_key=api_key or None,
        cors_origins=list(cors_origin or []),
        limits=EngineLimits(
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            request_timeout_s=timeout,
        ),
        max_body_bytes=max_body_bytes,
        max_prompt_bytes=max_prompt_bytes,
        drain_timeout_s=drain_timeout,
    )
    failure: list[QuotegenError] = []

    def load() -> Generator:
        return _load_generator(
            ref, **_load_options(device, dtype, quantize, allow_pickle, trust_remote_code, True)
        )

    def load_failed(error: QuotegenError) -> None:
        failure.append(error)
        server.should_exit = True

    server_app = create_app(loader=load, config=config, on_load_failed=load_failed)
    server = uvicorn.Server(
        uvicorn.Config(
            server_app,
            host=host,
            port=port,
            log_level=level,
            access_log=False,
            timeout_graceful_shutdown=max(1, round(drain_timeout)),
            server_header=False,
        )
    )
    if host not in {"127.0.0.1", "localhost", "::1"} and not api_key:
        print_note(f"Listening on {host} without --api-key: anyone who can reach it can use it.")
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; a drained server is a
    # clean exit, so those re-raised signals land on no-op handlers.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    if failure:
        raise failure[0]
    if not server.started:
        raise QuotegenError(f"The server could not start on {host}:{port} (see the log above).")


@app.command(
    epilog=_examples(
        "quotegen download",
        "quotegen download gpt2 --revision main",
        "quotegen download org/model@v1 --local-dir ./model --include '*.json'",
    )
)
def download(
    model: str | None = typer.Argument(
        None,
        show_default=False,
        help=f"Hub repo id[@revision] [default: {DEFAULT_HUB_MODEL}@{DEFAULT_HUB_REVISION}].",
    ),
    revision: str | None = typer.Option(
        None, "--revision", show_default=False, help="Branch, tag, commit or ref (e.g. refs/pr/1)."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        show_default=False,
        help="Hub token [default: HF_TOKEN or the stored login].",
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", show_default=False, help="Cache folder [default: the HF cache]."
    ),
    local_dir: Path | None = typer.Option(
        None, "--local-dir", show_default=False, help="Plain folder instead of the cache."
    ),
    include: list[str] | None = typer.Option(
        None, "--include", show_default=False, help="Only files matching this glob (repeatable)."
    ),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", show_default=False, help="Skip files matching this glob (repeatable)."
    ),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
    allow_pickle: bool = typer.Option(
        False, "--allow-pickle", help="Fetch pickle (.bin) weights when a repo has no safetensors."
    ),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Load the downloaded files to check they form a model."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress; only the path."),
) -> None:
    """Download a model from the Hugging Face Hub into the HF cache; print its path."""
    from quotegen.model import ModelRef, fetch_model, load_model, parse_model_ref

    if cache_dir is not None and local_dir is not None:
        raise UsageError("--cache-dir and --local-dir cannot be used together.")
    if model is None:
        ref = ModelRef(
            name=DEFAULT_HUB_MODEL, repo_id=DEFAULT_HUB_MODEL, revision=DEFAULT_HUB_REVISION
        )
    else:
        ref = parse_model_ref(model)
        if ref.repo_id is None:
            raise UsageError(f"'{model}' is a local path; download takes a Hub repo id.")
    if revision is not None:
        if ref.revision is not None and ref.revision != revision and model is not None:
            raise UsageError(f"'{model}' already names revision '{ref.revision}'.")
        ref = ModelRef(name=ref.repo_id or "", repo_id=ref.repo_id, revision=revision)
    from huggingface_hub.utils.tqdm import disable_progress_bars

    show = stderr_is_terminal() and not quiet
    if not show:
        disable_progress_bars()
    elif not quiet:
        print_note(f"Downloading {ref}")
    path = fetch_model(
        ref,
        token=token,
        allow_pickle=allow_pickle,
        cache_dir=cache_dir,
        local_dir=local_dir,
        include=include or (),
        exclude=exclude or (),
        force=force,
    )
    if check and not include and not exclude:
        checked = ModelRef(name=str(ref), repo_id=ref.repo_id, revision=ref.revision, path=path)
        loaded = load_model(checked, device="cpu", allow_pickle=allow_pickle)
        if not quiet:
            size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
            print_note(
                f"OK: {type(loaded.model).__name__}, {size / 1e6:.1f} MB, "
                f"context {loaded.context_length} tokens"
            )
    _write(f"{path}\n")


@app.command(
    epilog=_examples("quotegen models", "quotegen models --json"),
)
def models(
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per model."),
) -> None:
    """List the models usable without network (bundled and in the HF cache)."""
    import json

    from quotegen.model import list_local_models

    found = list_local_models()
    if as_json:
        _write(
            "".join(
                json.dumps(
                    {
                        "name": m.name,
                        "revision": m.revision,
                        "commit": m.commit,
                        "size_bytes": m.size_bytes,
                        "path": str(m.path),
                        "default": m.is_default,
                    }
                )
                + "\n"
                for m in found
            )
        )
        return
    if not found:
        print_note("No local models. Run: quotegen download")
        return
    rows = [("NAME", "REVISION", "SIZE", "DEFAULT")] + [
        (
            m.name,
            m.revision or (m.commit[:12] if m.commit else "-"),
            f"{m.size_bytes / 1e6:.1f} MB",
            "*" if m.is_default else "",
        )
        for m in found
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    _write(
        "".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n"
            for r in rows
        )
    )


@app.command(
    epilog=_examples(
        "quotegen train quotes.txt --out ./my-quotes --base gpt2 --epochs 1",
        "quotegen train quotes.jsonl --text-column quote --out ./tiny --from-scratch --n-layer 2",
        "quotegen train fortunes.txt --out ./mini --from-scratch --epochs 12 --seed 1",
    )
)
def train(
    data: Path = typer.Argument(..., help="Quotes: .txt (one per line), .jsonl or .csv."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to save the model in."),
    base: str | None = typer.Option(
        None, "--base", show_default=False, help="Model to fine-tune (any --model reference)."
    ),
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Train a small GPT-2 and its tokenizer on DATA."
    ),
    text_column: str | None = typer.Option(
        None, "--text-column", show_default=False, help="Column of .jsonl/.csv [default: text]."
    ),
    epochs: int = typer.Option(3, "--epochs", min=1, max=1000),
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, max=1024),
    max_length: int = typer.Option(64, "--max-length", min=8, max=4096, help="Tokens per quote."),
    learning_rate: float = typer.Option(5e-4, "--learning-rate", "--lr", min=1e-7, max=1.0),
    warmup_ratio: float = typer.Option(0.05, "--warmup", min=0.0, max=0.5),
    weight_decay: float = typer.Option(0.01, "--weight-decay", min=0.0, max=1.0),
    grad_clip: float = typer.Option(1.0, "--grad-clip", min=0.01, max=100.0),
    val_split: float = typer.Option(0.05, "--val-split", min=0.001, max=0.5),
    seed: int = typer.Option(0, "--seed", min=0),
    vocab_size: int = typer.Option(4096, "--vocab-size", min=300, max=100_000),
    n_layer: int = typer.Option(4, "--n-layer", min=1, max=48),
    n_head: int = typer.Option(4, "--n-head", min=1, max=64),
    n_embd: int = typer.Option(256, "--n-embd", min=8, max=4096),
    context: int = typer.Option(128, "--context", min=16, max=8192),
    dropout: float = typer.Option(0.1, "--dropout", min=0.0, max=0.9),
    device: str = DEVICE_OPTION,
    allow_pickle: bool = ALLOW_PICKLE_OPTION,
    trust_remote_code: bool = TRUST_CODE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the training report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fine-tune a model on a quotes file, or train a small one from scratch."""
    from quotegen.corpus import read_quotes
    from quotegen.training import TrainConfig
    from quotegen.training import train as run_training

    try:
        config = TrainConfig(
            out=out,
            base=base,
            from_scratch=from_scratch,
            epochs=epochs,
            batch_size=batch_size,
            max_length=max_length,
            learning_rate=learning_rate,
            warmup_ratio=warmup_ratio,
            weight_decay=weight_decay,
            grad_clip=grad_clip,
            val_split=val_split,
            seed=seed,
            device=device,
            vocab_size=vocab_size,
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            context=context,
            dropout=dropout,
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
        )
    except QuotegenError as exc:
        raise UsageError(exc.message) from exc
    quotes = read_quotes(data, text_column)
    with _progress(quiet, "Training") as update:
        report = run_training(config, quotes, progress=update, data_name=data.name)
    best = report.best_val_perplexity
    summary = {
        "out": str(report.out),
        "train_quotes": report.train_quotes,
        "val_quotes": report.val_quotes,
        "initial_val_perplexity": round(report.initial_val_perplexity, 4),
        "best_epoch": report.best_epoch,
        "best_val_perplexity": round(best, 4) if best is not None else None,
        "epochs": [
            {
                "epoch": e.epoch,
                "train_loss": e.train_loss,
                "val_perplexity": e.val_perplexity,
                "seconds": round(e.seconds, 1),
            }
            for e in report.epochs
        ],
        "interrupted": report.interrupted,
        "seconds": round(report.seconds, 1),
    }
    if as_json:
        import json

        _write(json.dumps(summary) + "\n")
    else:
        _write(f"{report.out}\n")
    if not quiet:
        print_note(
            f"Validation perplexity {report.initial_val_perplexity:.2f} -> {best:.2f} "
            f"(epoch {report.best_epoch}) in {report.seconds:.0f} s; saved to {report.out}"
        )
    if report.interrupted:
        print_note(f"Interrupted: the best checkpoint so far is in {report.out}")
        raise typer.Exit(130)


@app.command(
    name="eval",
    epilog=_examples(
        "quotegen eval heldout.txt --model ./my-quotes",
        "quotegen eval quotes.jsonl --model nandinib1999/quote-generator@refs/pr/1 --json",
    ),
)
def evaluate(
    data: Path = typer.Argument(..., help="Quotes: .txt (one per line), .jsonl or .csv."),
    model: str | None = MODEL_OPTION,
    text_column: str | None = typer.Option(None, "--text-column", show_default=False),
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1, max=1024),
    device: str = DEVICE_OPTION,
    dtype: str = DTYPE_OPTION,
    quantize: str = QUANTIZE_OPTION,
    allow_pickle: bool = ALLOW_PICKLE_OPTION,
    trust_remote_code: bool = TRUST_CODE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Token-level perplexity of a model on a quotes file."""
    import json
    import math
    import time

    from quotegen.corpus import read_quotes
    from quotegen.evaluation import negative_log_likelihood

    quotes = read_quotes(data, text_column)
    generator = _load_generator(
        _resolve(model, device=device, dtype=dtype, quiet=quiet, quantize=quantize),
        **_load_options(device, dtype, quantize, allow_pickle, trust_remote_code, quiet),
    )
    loaded = generator.loaded
    started = time.perf_counter()
    with _progress(quiet, "Evaluating") as update:
        done = [0]

        def on_batch(rows: int) -> None:
            done[0] += rows
            update("eval", done[0], len(quotes), {})

        total, count = negative_log_likelihood(
            loaded.model, loaded.tokenizer, quotes, batch_size=batch_size, on_batch=on_batch
        )
    ppl = math.exp(total / count) if count else math.nan
    result = {
        "model": loaded.name,
        "precision": loaded.precision,
        "data": str(data),
        "quotes": len(quotes),
        "tokens": count,
        "nll_per_token": total / count if count else None,
        "perplexity": ppl,
        "seconds": round(time.perf_counter() - started, 3),
    }
    _write(json.dumps(result) + "\n" if as_json else f"{ppl:.4f}\n")


@contextmanager
def _progress(
    quiet: bool, label: str
) -> Iterator[Callable[[str, int, int, dict[str, float]], None]]:
    """A rich progress bar on stderr (terminals only) fed by the core's progress callbacks."""
    if quiet or not stderr_is_terminal():
        yield lambda *_: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(f"{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=stderr_console(),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None, info="")

        def update(kind: str, done: int, total: int, values: dict[str, float]) -> None:
            if kind == "epoch":
                bar.console.print(
                    f"epoch {done}/{total}: validation perplexity {values['val_perplexity']:.2f}"
                )
                return
            info = " ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
            )
            bar.update(task, completed=done, total=total, info=info)

        yield update


# -- entry point ------------------------------------------------------------------------------


def _usage_message(exc: Any) -> str:
    command = exc.ctx.command_path if exc.ctx is not None else "quotegen"
    return f"{exc.format_message()} (see '{command} --help')"


def _quiet_broken_pipe() -> NoReturn:
    # The reader went away (e.g. `| head -1`): stop quietly, and keep Python from complaining
    # about the unflushable stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


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
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        stderr_console().print("Interrupted.")
        sys.exit(130)
    except (BrokenPipeError, _PipeClosed):
        _quiet_broken_pipe()
    except QuotegenError as exc:
        if debug_enabled():
            raise
        print_error(exc.message)
        sys.exit(exc.exit_code)
    except ClickException as exc:
        print_error(exc.format_message())  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except Exception as exc:
        if debug_enabled():
            raise
        print_error(
            f"Unexpected {type(exc).__name__}: {exc}. Set QUOTEGEN_DEBUG=1 for the traceback "
            "and please report it."
        )
        sys.exit(1)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
    sys.exit(result if isinstance(result, int) else 0)
