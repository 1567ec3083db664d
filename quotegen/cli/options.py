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
    BUNDLED_MODEL_NAME,
    DEFAULT_HUB_MODEL,
    ENV_DEVICE,
    ENV_DTYPE,
    ENV_MODEL,
    ENV_QUANTIZE,
)
from quotegen.console import print_note, status

if TYPE_CHECKING:
    from quotegen.generation import Engine
    from quotegen.model import LoadedModel, ModelRef

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


def with_load_flags(command: Command) -> Command:
    """Give a command the loading flags (``--device`` … ``--trust-remote-code``), declared
    here once; they reach the command as one ``flags: LoadFlags`` argument."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "flags"]
    kinds = {f.name: type(f.default) for f in fields(LoadFlags)}
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
        for name, option in _LOAD_OPTIONS.items()
        for kind in [kinds[name]]
    ]

    @functools.wraps(command)
    def wrapper(**given: Any) -> None:
        flags = LoadFlags(**{name: given.pop(name) for name in _LOAD_OPTIONS})
        command(flags=flags, **given)

    wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{k: v for k, v in command.__annotations__.items() if k != "flags"},
        **{p.name: p.annotation for p in added},
    }
    return wrapper  # type: ignore[return-value]


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
    from quotegen.model import check_quantize, choose_device, choose_dtype, resolve_model

    # A bad --device/--dtype/--quantize fails before anything else.
    torch_device = choose_device(flags.device)
    check_quantize(flags.quantize, torch_device, choose_dtype(flags.dtype, torch_device))
    ref = resolve_model(model)
    if ref.bundled and not model and not quiet:
        print_note(
            f"Using the bundled model {BUNDLED_MODEL_NAME}. For the full GPT-2 quote model, "
            f"run: quotegen download ({DEFAULT_HUB_MODEL})"
        )
    return ref


def load(ref: ModelRef, flags: LoadFlags, *, quiet: bool) -> LoadedModel:
    """Load the model (the one loading path of every command) behind a status line."""
    from dataclasses import asdict

    from quotegen.model import load_model

    with status(f"Loading {ref}…", show=not quiet):
        return load_model(ref, **asdict(flags))


def load_engine(ref: ModelRef, flags: LoadFlags, *, quiet: bool) -> Engine:
    from quotegen.generation import Engine

    return Engine(load(ref, flags, quiet=quiet))


class PipeClosed(Exception):
    """stdout's reader went away; not an OSError, so typer's click cannot swallow it."""


def write(text: str) -> None:
    """Data to stdout, flushed now (pipelines see each result as soon as it exists)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise PipeClosed from exc
