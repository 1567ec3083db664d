"""What the commands share, and the one way options are declared.

- A command's own options (``--json``, ``--host``, ``--model``…) are ``Annotated`` aliases in
  its ordinary signature, the shared ones defined here (hf's CLI's way).
- A declared setting (``quotegen.config``: generation, loading, serve and training settings)
  is never written in a signature: the command's class names the groups it takes
  (``SettingsCommand``, ``ModelCommand``, ``ServeCommand``, ``TrainCommand``), each group's
  flags are derived from its declarations, and the command reads the values with
  ``chosen_settings``, ``LoadFlags.of`` or ``declared_values``. A new setting is one entry in
  ``quotegen.config``: its flag, its pydantic field and its help all follow.

Also: flag validation through the settings models, model resolution and loading behind a
status line, and writing data to stdout.

Nothing here imports torch or pydantic at import time: ``quotegen --help`` stays instant.
"""

from __future__ import annotations

import importlib
import inspect
import operator
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from quotegen.config import (
    ENV_MODEL,
    GENERATION_SETTINGS,
    LOADING_SETTINGS,
    SERVE_SETTINGS,
    TRAIN_SETTINGS,
    Setting,
)
from quotegen.console import loading_display, print_note

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
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Nothing on stderr but errors.")]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        show_default=False,
        help="Hub token \\[default: HF_TOKEN or the stored login].",
    ),
]
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


def _help(setting: Setting) -> str:
    return setting.help.replace("[", "\\[")  # rich markup: a bracket is literal text


def _setting_option(name: str) -> Any:
    """The CLI flag of a declared generation setting (``quotegen.config.Generation``): its
    flags and help, its default shown; unset, the model's own default applies."""
    setting = GENERATION_SETTINGS[name]
    default = setting.default
    shown = "newline" if default == ["\n"] else default
    shown = "true" if shown is True else shown
    own = "the model's own, else " if setting.model_key else ""
    help = _help(setting) + ("" if default is None else f" \\[default: {own}{shown}]")
    if isinstance(default, list):
        help = help.replace(" these.", " these (repeatable).")
    return typer.Option(None, *setting.flags, show_default=False, rich_help_panel=setting.panel,
                        help=help)  # fmt: skip


def _setting_switch(name: str) -> Any:
    """A declared setting's switch (``--greedy``, ``--no-stop``, ``--raw``)."""
    setting = GENERATION_SETTINGS[name]
    assert setting.switch is not None, f"setting {name} declares no switch"
    flag, _, help = setting.switch
    return typer.Option(False, flag, rich_help_panel=setting.panel, help=help)


def _param_name(flag: str) -> str:
    return flag.split("/")[0].lstrip("-").replace("-", "_")


KEYWORD = inspect.Parameter.KEYWORD_ONLY


def _settings_parameters(settings: Mapping[str, Setting]) -> list[inspect.Parameter]:
    """Each declared generation setting's flag and switch, as a signature would declare
    them; unset (None), the model's own default applies."""
    parameters = []
    for name, setting in settings.items():
        if setting.flags:
            optional = operator.or_(setting.kind, None)
            option = _setting_option(name)
            parameters.append(inspect.Parameter(name, KEYWORD, default=option, annotation=optional))
        if setting.switch is not None:
            flag, switch = _param_name(setting.switch[0]), _setting_switch(name)
            parameters.append(inspect.Parameter(flag, KEYWORD, default=switch, annotation=bool))
    return parameters


def _declared_parameters(settings: Mapping[str, Setting]) -> list[inspect.Parameter]:
    """Each declared setting's flag, as a signature would declare it, its default shown; an
    absent flag reads as None and ``declared_values`` gives it the declared default (which
    also keeps a list default from being shared)."""
    parameters = []
    for name, setting in settings.items():
        default = setting.default
        panel, help = setting.panel, _help(setting)
        if setting.kind is bool:
            option = typer.Option(default, *setting.flags, rich_help_panel=panel, help=help)
            annotation: Any = bool
        else:
            if default not in (None, ..., []):
                help += f" \\[default: {default}]"
            if isinstance(default, list):
                help += " Repeatable."
            option = typer.Option(
                ... if default is ... else None,
                *setting.flags,
                envvar=setting.envvar,
                show_default=False,
                rich_help_panel=panel,
                help=help,
            )
            annotation = setting.kind if default is ... else operator.or_(setting.kind, None)
        parameters.append(inspect.Parameter(name, KEYWORD, default=option, annotation=annotation))
    return parameters


def _typer_params(parameters: list[inspect.Parameter]) -> list[Any]:
    """The click parameters typer itself makes for ``parameters`` (help panels, types,
    environment variables included): what a command declaring them in its signature would get.
    Typer makes click parameters only from a function's signature, so the declarations are
    given one."""

    def group(**_: Any) -> None:
        """An option group."""

    group.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    group.__annotations__ = {p.name: p.annotation for p in parameters}
    helper = typer.Typer(add_completion=False)
    helper.command()(group)
    return list(typer.main.get_command(helper).params)


@dataclass(frozen=True)
class Group:
    """A group of declared settings a command takes: its flags come from the declarations
    (``only``: these of them), and its values reach the command under ``key``."""

    key: str
    settings: Mapping[str, Setting]
    only: tuple[str, ...] | None = None
    #: An absent flag leaves the setting unset, so the model's own default applies (the
    #: generation settings); otherwise it takes the declared default.
    model_defaults: bool = False

    def parameters(self) -> list[inspect.Parameter]:
        chosen = {n: s for n, s in self.settings.items() if self.only is None or n in self.only}
        if self.model_defaults:
            return _settings_parameters(chosen)
        return _declared_parameters(chosen)


GENERATION = Group("settings", GENERATION_SETTINGS, model_defaults=True)
LOADING = Group("loading", LOADING_SETTINGS)
SERVING = Group("serve", SERVE_SETTINGS)
TRAINING = Group("train", TRAIN_SETTINGS)


class ModelCommand(TyperCommand):
    """A command that takes groups of declared settings (this one: the loading flags,
    ``--device`` … ``--trust-remote-code``) after its own options. Their values reach the
    command through its context (``LoadFlags.of(context)``, ``chosen_settings(context)``,
    ``declared_values(context, group)``): its signature lists only what is its own."""

    groups: tuple[Group, ...] = (LOADING,)
    _grouped: dict[str, list[Any]] | None = None

    @property
    def grouped(self) -> dict[str, list[Any]]:
        """Each group's click parameters, by the key its values reach the command under;
        made when first asked for, so ``quotegen --help`` (which lists commands without
        their options) never builds them."""
        if self._grouped is None:
            self._grouped = {group.key: _typer_params(group.parameters()) for group in self.groups}
            for params in self._grouped.values():
                self._own_params.extend(params)
        return self._grouped

    @property
    def params(self) -> list[Any]:
        """The command's own parameters, then its groups'."""
        self.grouped  # noqa: B018 (made on first use)
        return self._own_params

    @params.setter
    def params(self, value: list[Any]) -> None:
        self._own_params = value

    def invoke(self, ctx: Any) -> Any:
        for key, params in self.grouped.items():
            names = {param.name for param in params}
            ctx.meta[f"quotegen.{key}"] = {n: ctx.params.pop(n) for n in names if n in ctx.params}
        return super().invoke(ctx)


class SettingsCommand(ModelCommand):
    """A model command that also takes every declared generation setting's flag and switch
    (``quotegen.config.Generation``): a new setting reaches ``generate`` and ``batch`` by
    itself. Read with ``chosen_settings(context)``."""

    groups = (GENERATION, LOADING)


class ServeCommand(ModelCommand):
    """``serve``: the declared serve settings (``quotegen.config.Serve``) and loading flags."""

    groups = (SERVING, LOADING)


class TrainCommand(ModelCommand):
    """``train``: the declared training settings (``quotegen.config.Train``) and how the base
    is loaded."""

    groups = (TRAINING, Group("loading", LOADING_SETTINGS, ("device", "allow_pickle",
                                                              "trust_remote_code")))  # fmt: skip


def declared_values(context: typer.Context, group: Group) -> dict[str, Any]:
    """The values of a group's flags: what was given, else the declared default."""
    given = context.meta.get(f"quotegen.{group.key}", {})
    values = {}
    for name, value in given.items():
        if isinstance(value, tuple):
            value = list(value)
        if value is None or value == []:
            default = group.settings[name].default
            value = list(default) if isinstance(default, list) else default
        values[name] = value
    return values


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
    """How to load the model: the loading flags (``quotegen.config.Loading``) as typed values."""

    device: str
    dtype: str
    quantize: str
    allow_pickle: bool
    trust_remote_code: bool

    @classmethod
    def of(cls, context: typer.Context) -> LoadFlags:
        """The loading flags a ``ModelCommand`` was given (a command that takes some of
        them: the declared defaults of the others)."""
        declared = {name: setting.default for name, setting in LOADING_SETTINGS.items()}
        return cls(**{**declared, **declared_values(context, LOADING)})


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
        with loading_display(f"Loading {ref}…", show=spinner and not quiet):
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
