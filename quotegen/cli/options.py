"""What the commands share: the loading flags, flag validation through the settings models,
model resolution and loading behind a status line, and writing data to stdout.

Nothing here imports torch or pydantic at import time: ``quotegen --help`` stays instant.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from quotegen.config import (
    ENV_DEVICE,
    ENV_DTYPE,
    ENV_MODEL,
    ENV_QUANTIZE,
    GENERATION,
)
from quotegen.console import print_note, status

if TYPE_CHECKING:
    from quotegen.generation import Engine
    from quotegen.model import LoadedModel
    from quotegen.references import ModelRef

# Recent typer vendors its own click; reach its exception classes through a public name so this
# works whichever click typer uses.
_click_exceptions: Any = importlib.import_module(typer.BadParameter.__module__)
UsageError: type[Exception] = _click_exceptions.UsageError
ClickException: type[Exception] = _click_exceptions.ClickException


def examples(*lines: str) -> str:
    """An epilog of copy-pasteable examples (blank lines keep rich from joining them)."""
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(f"  [cyan]{line}[/cyan]" for line in lines)


MODEL_OPTION = typer.Option(
    None,
    "--model",
    "-m",
    envvar=ENV_MODEL,
    show_default=False,
    help="Hub repo id (org/name\\[@revision]), local directory, or quotegen-mini. "
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
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="Nothing on stderr but errors.")
# Ray (the `ray` extra): shared by `batch --ray` and `serve --ray`.
RAY_OPTION = typer.Option(
    None,
    "--ray",
    metavar="ADDRESS",
    show_default=False,
    help="Run on Ray: 'local' (start a local Ray), 'auto', or ray://host:10001. Needs "
    "pip install 'quotegen\\[ray]'.",
)
REPLICAS_OPTION = typer.Option(1, "--replicas", min=1, max=1024, help="With --ray: model replicas.")
CPUS_PER_REPLICA_OPTION = typer.Option(
    1.0, "--cpus-per-replica", min=0.0, help="With --ray: CPUs each replica reserves."
)
GPUS_PER_REPLICA_OPTION = typer.Option(
    0.0, "--gpus-per-replica", min=0.0, help="With --ray: GPUs each replica reserves."
)


def check_ray_flags(address: str | None, replicas: int, cpus: float, gpus: float) -> None:
    """The replica flags only mean something with --ray; and --ray needs the extra."""
    if address is None:
        if replicas != 1 or cpus != 1.0 or gpus:
            raise UsageError("--replicas, --cpus-per-replica and --gpus-per-replica need --ray.")
        return
    from quotegen.cluster import import_ray

    import_ray()


@dataclass(frozen=True)
class LoadFlags:
    """How to load the model: the flags every model-using command takes."""

    device: str = "auto"
    dtype: str = "auto"
    quantize: str = "none"
    allow_pickle: bool = False
    trust_remote_code: bool = False


_LOAD_OPTIONS = {
    "device": DEVICE_OPTION,
    "dtype": DTYPE_OPTION,
    "quantize": QUANTIZE_OPTION,
    "allow_pickle": ALLOW_PICKLE_OPTION,
    "trust_remote_code": TRUST_CODE_OPTION,
}
Command = TypeVar("Command", bound=Callable[..., None])


def _with_options(
    command: Command,
    options: dict[str, tuple[Any, Any]],
    name: str,
    build: Callable[[dict[str, Any]], Any],
) -> Command:
    """Give ``command`` the flags in ``options`` (parameter name -> (typer option, type)),
    declared once; they reach it as one argument, ``name``, made by ``build``."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != name]
    added = [
        inspect.Parameter(flag, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        for flag, (option, kind) in options.items()
    ]

    @functools.wraps(command)
    def wrapper(**given: Any) -> None:
        built = build({flag: given.pop(flag) for flag in options})
        command(**{name: built}, **given)

    wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{k: v for k, v in command.__annotations__.items() if k != name},
        **{p.name: p.annotation for p in added},
    }
    return wrapper  # type: ignore[return-value]


def with_load_flags(command: Command) -> Command:
    """Give a command the loading flags (``--device`` … ``--trust-remote-code``), declared
    here once; they reach the command as one ``flags: LoadFlags`` argument."""
    kinds = {f.name: type(f.default) for f in fields(LoadFlags)}
    options = {flag: (option, kinds[flag]) for flag, option in _LOAD_OPTIONS.items()}
    return _with_options(command, options, "flags", lambda values: LoadFlags(**values))


#: The generation flags of ``generate`` and ``batch``, and the setting each one sets.
GENERATION_FLAGS = {
    "max_new_tokens": "--max-new-tokens",
    "min_new_tokens": "--min-new-tokens",
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "repetition_penalty": "--repetition-penalty",
    "n": "-n",
    "seed": "--seed",
    "stop": "--stop",
    "whole_words": "--whole-words",
}
_GENERATION_OPTIONS: dict[str, tuple[Any, Any]] = {
    "max_new_tokens": (
        typer.Option(
            None,
            "--max-new-tokens",
            "-t",
            show_default=False,
            help=f"Most new tokens \\[default: {GENERATION.max_new_tokens}].",
        ),
        int | None,
    ),
    "min_new_tokens": (
        typer.Option(
            None, "--min-new-tokens", show_default=False, help="No end-of-text before this many."
        ),
        int | None,
    ),
    "temperature": (
        typer.Option(
            None,
            "--temperature",
            show_default=False,
            help=f"0 = greedy \\[default: {GENERATION.temperature}].",
        ),
        float | None,
    ),
    "top_k": (
        typer.Option(
            None, "--top-k", show_default=False, help=f"0 = off \\[default: {GENERATION.top_k}]."
        ),
        int | None,
    ),
    "top_p": (
        typer.Option(
            None, "--top-p", show_default=False, help=f"1 = off \\[default: {GENERATION.top_p}]."
        ),
        float | None,
    ),
    "repetition_penalty": (
        typer.Option(
            None,
            "--repetition-penalty",
            show_default=False,
            help=f"1 = off \\[default: {GENERATION.repetition_penalty}].",
        ),
        float | None,
    ),
    "n": (
        typer.Option(
            None,
            "-n",
            "--num-samples",
            show_default=False,
            help=f"Results per prompt \\[default: {GENERATION.n}].",
        ),
        int | None,
    ),
    "seed": (
        typer.Option(None, "--seed", show_default=False, help="Reproducible sampling."),
        int | None,
    ),
    "greedy": (
        typer.Option(False, "--greedy", help="Always pick the likeliest token."),
        bool,
    ),
    "stop": (
        typer.Option(
            None,
            "--stop",
            show_default=False,
            help="Stop string (repeatable) \\[default: newline].",
        ),
        list[str] | None,
    ),
    "no_stop": (
        typer.Option(False, "--no-stop", help="No stop strings: run to max tokens."),
        bool,
    ),
    "raw": (
        typer.Option(False, "--raw", help="Keep the text as generated, not cleaned."),
        bool,
    ),
    "whole_words": (
        typer.Option(
            None,
            "--whole-words/--mid-word",
            show_default=False,
            help="A prompt ending in a letter ends in a whole word (the default), or "
            "--mid-word: the continuation may complete that word.",
        ),
        bool | None,
    ),
}


def _generation_given(values: dict[str, Any]) -> dict[str, Any]:
    if values["stop"] and values["no_stop"]:
        raise UsageError("--stop and --no-stop cannot be used together.")
    return given(
        max_new_tokens=values["max_new_tokens"],
        min_new_tokens=values["min_new_tokens"],
        temperature=values["temperature"],
        top_k=values["top_k"],
        top_p=values["top_p"],
        repetition_penalty=values["repetition_penalty"],
        n=values["n"],
        seed=values["seed"],
        do_sample=False if values["greedy"] else None,
        stop=[] if values["no_stop"] else (values["stop"] or None),
        clean=False if values["raw"] else None,
        whole_words=values["whole_words"],
    )


def with_generation_flags(command: Command) -> Command:
    """Give a command the generation flags (``--max-new-tokens`` … ``--mid-word``), declared
    here once; they reach it as ``chosen``: the settings the user set, by their
    ``GenerationSettings`` names (unset ones are absent)."""
    return _with_options(command, _GENERATION_OPTIONS, "chosen", _generation_given)


def given(**values: Any) -> dict[str, Any]:
    """The flags the user gave (None = unset)."""
    return {name: value for name, value in values.items() if value is not None}


@contextmanager
def flag_errors(flags: dict[str, str]) -> Iterator[None]:
    """Settings built inside: a value out of range is a usage error naming its flag, with the
    range from the settings model's ``Field``."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        flag = flags.get(field)
        raise UsageError(f"{flag}: {message}" if flag else message) from exc


def resolve(model: str | None, flags: LoadFlags, *, quiet: bool) -> ModelRef:
    """Check --device/--dtype/--quantize, resolve the model reference, and say when the
    bundled one is used."""
    from quotegen.model import check_quantize, choose_device, choose_dtype
    from quotegen.references import resolve_model

    # A bad --device/--dtype/--quantize fails before anything else.
    torch_device = choose_device(flags.device)
    choose_dtype(flags.dtype, torch_device)
    check_quantize(flags.quantize, torch_device, flags.dtype)
    return resolve_model(model)


def load(ref: ModelRef, flags: LoadFlags, *, quiet: bool, spinner: bool = True) -> LoadedModel:
    """Load the model (the one loading path of every command) behind a status line; what a
    first use fetches, converts or merges, and a fallback, are said on stderr."""
    from dataclasses import asdict

    from quotegen.model import load_model

    with status(f"Loading {ref}…", show=spinner and not quiet):
        return load_model(ref, **asdict(flags), notify=None if quiet else print_note)


def load_engine(ref: ModelRef, flags: LoadFlags, *, quiet: bool, spinner: bool = True) -> Engine:
    from quotegen.generation import Engine

    return Engine(load(ref, flags, quiet=quiet, spinner=spinner))


class PipeClosed(Exception):
    """stdout's reader went away; not an OSError, so typer's click cannot swallow it."""


def write(text: str) -> None:
    """Data to stdout, flushed now (pipelines see each result as soon as it exists)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise PipeClosed from exc
