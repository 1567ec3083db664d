"""What the commands share: the shared flags as ``Annotated`` aliases (hf's CLI's way: each
command declares them in an ordinary signature), the generation flags derived from the
settings' declarations, flag validation through the settings models, model resolution and
loading behind a status line, and writing data to stdout.

Nothing here imports torch or pydantic at import time: ``quotegen --help`` stays instant.
"""

from __future__ import annotations

import importlib
import inspect
import operator
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from quotegen.config import (
    ENV_DEVICE,
    ENV_DTYPE,
    ENV_MODEL,
    ENV_QUANTIZE,
    GENERATION_SETTINGS,
)
from quotegen.console import print_note, status

if TYPE_CHECKING:
    from quotegen.engine.generation import Engine
    from quotegen.loading.model import LoadedModel, Placement
    from quotegen.loading.references import ModelRef

# Recent typer vendors its own click; reach its exception classes through a public name so this
# works whichever click typer uses.
_click_exceptions: Any = importlib.import_module(typer.BadParameter.__module__)


def _value_type(shown: Callable[[Any, Any], str | None]) -> Callable[[Any, Any], str | None]:
    """Typer's type column as a reader wants it: nothing for a flag (it takes no value), and
    a repeatable option's or argument's element type (``<str>``, not ``<list[str]>``)."""

    def value_type(parameter: Any, ctx: Any) -> str | None:
        if getattr(parameter, "is_bool_flag", False):
            return None
        label = shown(parameter, ctx)
        if label is not None and label.startswith("<list[") and "]>" in label:
            return (
                "<"
                + label[len("<list[") : label.index("]>")]
                + ">"
                + label[label.index("]>") + 2 :]
            )
        return label

    return value_type


# Typer 0.2x writes ``--json <bool>`` and ``--stop <list[str]>``: every command's help shows
# the values its flags take instead, whichever way the flag is declared.
for _parameter in (typer.core.TyperOption, typer.core.TyperArgument):
    _parameter.display_type_rich = _value_type(_parameter.display_type_rich)  # type: ignore[method-assign,assignment]
UsageError: type[Exception] = _click_exceptions.UsageError
ClickException: type[Exception] = _click_exceptions.ClickException

GENERATION_PANEL = "Generation settings"
LOADING_PANEL = "Model loading"
RAY_PANEL = "Ray"


def examples(*lines: str) -> str:
    """An epilog of copy-pasteable examples (blank lines keep rich from joining them)."""
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(f"  [cyan]{line}[/cyan]" for line in lines)


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar=ENV_MODEL,
        show_default=False,
        help="Hub repo id (org/name\\[@revision]), local directory or .gguf file, or "
        "quotegen-mini. Default: quotegen-135m (the shipped quote adapter).",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        envvar=ENV_DEVICE,
        rich_help_panel=LOADING_PANEL,
        help="auto (cuda > mps > cpu), cpu, cuda\\[:N] or mps.",
    ),
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        envvar=ENV_DTYPE,
        rich_help_panel=LOADING_PANEL,
        help="auto (bfloat16 on CPUs with bf16 units, else float32), float32, float16 or bfloat16.",
    ),
]
QuantizeOpt = Annotated[
    str,
    typer.Option(
        "--quantize",
        envvar=ENV_QUANTIZE,
        rich_help_panel=LOADING_PANEL,
        help="none, or weight-only int8 / int4 linear layers (CPU; faster, within 1 % bits "
        "per byte).",
    ),
]
AllowPickleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-pickle",
        rich_help_panel=LOADING_PANEL,
        help="Allow pickle (.bin) weights, which can run code. Trusted models only.",
    ),
]
TrustCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        rich_help_panel=LOADING_PANEL,
        help="Run custom model code from the repo. Trusted models only.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Nothing on stderr but errors.")]
# Ray (the `ray` extra): shared by `batch --ray` and `serve --ray`.
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        show_default=False,
        rich_help_panel=RAY_PANEL,
        help="Run on Ray: 'local' (start a local Ray), 'auto', or ray://host:10001. Needs "
        "pip install 'quotegen\\[ray]'.",
    ),
]
ReplicasOpt = Annotated[
    int,
    typer.Option(
        "--replicas", min=1, max=1024, rich_help_panel=RAY_PANEL, help="With --ray: replicas."
    ),
]
CpusOpt = Annotated[
    float,
    typer.Option(
        "--cpus-per-replica",
        min=0.0,
        rich_help_panel=RAY_PANEL,
        help="With --ray: CPUs each replica reserves.",
    ),
]
GpusOpt = Annotated[
    float,
    typer.Option(
        "--gpus-per-replica",
        min=0.0,
        rich_help_panel=RAY_PANEL,
        help="With --ray: GPUs each replica reserves.",
    ),
]


def _setting_option(name: str) -> Any:
    """The CLI flag of a declared generation setting (``quotegen.config.Generation``): its
    flags and help, its default shown; unset, the model's own default applies."""
    setting = GENERATION_SETTINGS[name]
    default = setting.default
    shown = "newline" if default == ["\n"] else default
    shown = "true" if shown is True else shown
    own = "the model's own, else " if setting.model_key else ""
    help = setting.help + ("" if default is None else f" \\[default: {own}{shown}]")
    if isinstance(default, list):
        help = help.replace(" these.", " these (repeatable).")
    return typer.Option(
        None, *setting.flags, show_default=False, rich_help_panel=GENERATION_PANEL, help=help
    )


def _setting_switch(name: str) -> Any:
    """A declared setting's switch (``--greedy``, ``--no-stop``, ``--raw``)."""
    switch = GENERATION_SETTINGS[name].switch
    assert switch is not None, f"setting {name} declares no switch"
    return typer.Option(False, switch[0], rich_help_panel=GENERATION_PANEL, help=switch[2])


def _param_name(flag: str) -> str:
    return flag.split("/")[0].lstrip("-").replace("-", "_")


KEYWORD = inspect.Parameter.KEYWORD_ONLY


def _settings_parameters() -> list[inspect.Parameter]:
    """Each declared setting's flag and switch, as a command signature would declare them."""
    parameters = []
    for name, setting in GENERATION_SETTINGS.items():
        if setting.flags:
            optional = operator.or_(setting.kind, None)  # unset: the model's default applies
            option = _setting_option(name)
            parameters.append(inspect.Parameter(name, KEYWORD, default=option, annotation=optional))
        if setting.switch is not None:
            flag, switch = _param_name(setting.switch[0]), _setting_switch(name)
            parameters.append(inspect.Parameter(flag, KEYWORD, default=switch, annotation=bool))
    return parameters


def _loading_parameters() -> list[inspect.Parameter]:
    """The loading flags (``LoadFlags``' fields and defaults), as a signature would declare
    them."""
    aliases = {
        "device": DeviceOpt,
        "dtype": DtypeOpt,
        "quantize": QuantizeOpt,
        "allow_pickle": AllowPickleOpt,
        "trust_remote_code": TrustCodeOpt,
    }
    return [
        inspect.Parameter(f.name, KEYWORD, default=f.default, annotation=aliases[f.name])
        for f in fields(LoadFlags)
    ]


def _typer_params(parameters: list[inspect.Parameter]) -> list[Any]:
    """The click parameters typer itself makes for ``parameters`` (help panels, types,
    ranges, environment variables included), from a one-command app declaring them."""

    def group(**_: Any) -> None:
        """An option group."""

    group.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    group.__annotations__ = {p.name: p.annotation for p in parameters}
    helper = typer.Typer(add_completion=False)
    helper.command()(group)
    return list(typer.main.get_command(helper).params)


class ModelCommand(TyperCommand):
    """A command that loads a model: it takes the loading flags (``--device`` …
    ``--trust-remote-code``, declared once above) after its own options. Option groups like
    this one reach the command through its context (``LoadFlags.of(context)``), not its
    signature: each command's signature lists only what is its own."""

    groups: tuple[tuple[str, Callable[[], list[inspect.Parameter]]], ...] = (
        ("loading", _loading_parameters),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grouped = {key: _typer_params(make()) for key, make in self.groups}
        for params in self.grouped.values():
            self.params.extend(params)

    def invoke(self, ctx: Any) -> Any:
        for key, params in self.grouped.items():
            names = {param.name for param in params}
            ctx.meta[f"quotegen.{key}"] = {n: ctx.params.pop(n) for n in names if n in ctx.params}
        return super().invoke(ctx)


class SettingsCommand(ModelCommand):
    """A model command that also takes every declared generation setting's flag and switch,
    derived from the declarations (``quotegen.config.Generation``): a new setting reaches
    ``generate`` and ``batch`` by itself. Read with ``chosen_settings(context)``."""

    groups = (("settings", _settings_parameters), *ModelCommand.groups)


def chosen_settings(context: typer.Context, *, check: bool = True) -> dict[str, Any]:
    """The generation settings a ``SettingsCommand``'s flags set, by their settings names
    (unset ones are absent); ``check``: validated now, so a bad flag fails before anything
    is loaded (client mode leaves that to the server and imports no settings model)."""
    params = context.meta.get("quotegen.settings", {})
    chosen: dict[str, Any] = {}
    for name, setting in GENERATION_SETTINGS.items():
        value = params.get(name) if setting.flags else None
        if isinstance(value, tuple | list):  # a repeatable flag: none given is unset
            value = list(value) or None
        if setting.switch is not None and params.get(_param_name(setting.switch[0])):
            if value is not None:
                raise UsageError(
                    f"{setting.flags[0]} and {setting.switch[0]} cannot be used together."
                )
            switched = setting.switch[1]
            value = list(switched) if isinstance(switched, list) else switched
        if value is not None:
            chosen[name] = value
    if check:
        from quotegen.settings import GenerationSettings

        with flag_errors(context):
            GenerationSettings(**chosen)
    return chosen


def flag_for(context: typer.Context | None, field: str) -> str | None:
    """The flag that sets ``field`` (a parameter of the command, or a declared setting)."""
    if context is not None:
        for param in context.command.params:
            if param.name == field and param.opts and param.opts[0].startswith("-"):
                return str(param.opts[0])
    setting = GENERATION_SETTINGS.get(field)
    if setting is not None and setting.flags:
        return setting.flags[0].split("/")[0]
    if setting is not None and setting.switch is not None:
        return setting.switch[0]
    return None


@contextmanager
def flag_errors(context: typer.Context | None) -> Iterator[None]:
    """Settings built inside: a value out of range is a usage error naming its flag, with the
    range from the settings model's ``Field``."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        flag = flag_for(context, field)
        raise UsageError(f"{flag}: {message}" if flag else message) from exc


def model_fields(context: typer.Context, names: Mapping[str, Any]) -> dict[str, Any]:
    """The command's parameters that are fields of a settings model (by the same name)."""
    return {name: value for name, value in context.params.items() if name in names}


def check_ray_flags(address: str | None, replicas: int, cpus: float, gpus: float) -> None:
    """The replica flags only mean something with --ray; and --ray needs the extra."""
    if address is None:
        if replicas != 1 or cpus != 1.0 or gpus:
            raise UsageError("--replicas, --cpus-per-replica and --gpus-per-replica need --ray.")
        return
    from quotegen.jobs.cluster import import_ray

    import_ray()


@dataclass(frozen=True)
class LoadFlags:
    """How to load the model: the flags every model-using command takes."""

    device: str = "auto"
    dtype: str = "auto"
    quantize: str = "none"
    allow_pickle: bool = False
    trust_remote_code: bool = False

    @classmethod
    def of(cls, context: typer.Context) -> LoadFlags:
        """The loading flags a ``ModelCommand`` was given."""
        return cls(**context.meta.get("quotegen.loading", {}))


class Target:
    """A resolved model reference and a checked placement: what every command loads. The
    flags are checked here, once (``model.place``), before anything is fetched."""

    def __init__(self, model: str | None, flags: LoadFlags) -> None:
        from quotegen.loading.model import place
        from quotegen.loading.references import resolve_model

        self.flags = flags
        # A bad --device/--dtype/--quantize fails before anything else.
        self.placement: Placement = place(flags.device, flags.dtype, flags.quantize)
        self.ref: ModelRef = resolve_model(model)

    def load(
        self, *, quiet: bool, spinner: bool = True, ref: ModelRef | None = None
    ) -> LoadedModel:
        """The model alone (``eval``): see ``engine``."""
        return self.engine(quiet=quiet, spinner=spinner, ref=ref).loaded

    def engine(self, *, quiet: bool, spinner: bool = True, ref: ModelRef | None = None) -> Engine:
        """Load the model (``ref`` instead of the resolved one: a fallback) behind a status
        line, through the library's entry point (``quotegen.get_model``): the one loading path
        of every command. What a first use fetches, converts or merges, and a fallback, are
        said on stderr."""
        from quotegen import get_model

        ref = ref or self.ref
        with status(f"Loading {ref}…", show=spinner and not quiet):
            return get_model(
                ref,
                placement=self.placement,
                allow_pickle=self.flags.allow_pickle,
                trust_remote_code=self.flags.trust_remote_code,
                notify=None if quiet else print_note,
            )


class PipeClosed(Exception):
    """stdout's reader went away; not an OSError, so typer's click cannot swallow it."""


def write(text: str) -> None:
    """Data to stdout, flushed now (pipelines see each result as soon as it exists)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError as exc:
        raise PipeClosed from exc
