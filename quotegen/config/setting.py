"""``Setting``: the one way a setting is declared (plain Python, so ``--help`` needs no
pydantic), and reading a group of declarations."""

from types import SimpleNamespace


class Setting:
    """One setting, declared once: its default (``...``: required), allowed range, help text,
    CLI flags and help panel; for generation settings also the OpenAI request field (and
    OpenAI's own default) and the ``generation_config.json`` key.

    Everything else is derived from these declarations (the groups below): the pydantic
    models and request models (``quotegen.settings``), the CLI flags (``quotegen.cli.options``),
    ``/info``'s limits, OpenAI's names and defaults, the model defaults read from a model's
    ``generation_config.json``. Plain Python, so ``quotegen --help`` needs no pydantic.
    """

    __slots__ = (
        "bounds",
        "choices",
        "default",
        "envvar",
        "flags",
        "help",
        "item_length",
        "kind",
        "model_key",
        "name",
        "openai",
        "openai_default",
        "override",
        "panel",
        "switch",
    )

    def __init__(
        self,
        default: object,
        help: str,
        *,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        min_length: int | None = None,
        max_items: int | None = None,
        pattern: str | None = None,
        choices: tuple[str, ...] | None = None,
        item_length: tuple[int, int] | None = None,
        flags: tuple[str, ...] = (),
        panel: str | None = None,
        envvar: str | None = None,
        switch: tuple[str, object, str] | None = None,
        openai: str | None = None,
        openai_default: object = ...,
        model_key: str | None = None,
        override: bool = True,
    ) -> None:
        self.name = ""  # set from the declaring attribute
        self.kind: object = object
        self.default = default
        self.help = help
        bounds = {
            "ge": ge,
            "gt": gt,
            "le": le,
            "lt": lt,
            "min_length": min_length,
            "max_length": max_items,
            "pattern": pattern,
        }
        self.bounds = {key: value for key, value in bounds.items() if value is not None}
        #: The values a text setting takes (validated as a ``Literal`` of them).
        self.choices = choices
        #: The CLI help panel its flag is listed in (none: the command's own options).
        self.panel = panel
        #: The environment variable its flag falls back to.
        self.envvar = envvar
        #: (min, max) length of each item of a list setting.
        self.item_length = item_length
        #: The CLI flags that set it (none: not a CLI flag); a bool's "--on/--off" pair.
        self.flags = flags
        #: (flag, value, help): a CLI switch that sets it to ``value`` (``--greedy``, ``--raw``).
        self.switch = switch
        #: The OpenAI request field (vLLM's extras included), and OpenAI's own default for it
        #: (``...``: none, the model's or quotegen's default applies).
        self.openai = openai
        self.openai_default = openai_default
        #: Its key in a model's ``generation_config.json`` (a model may set its own default).
        self.model_key = model_key
        #: Whether the native and seed routes let a client override it.
        self.override = override


def declared(spec: type, panel: str | None = None) -> dict[str, Setting]:
    """Each setting a group class declares (``name: Annotated[type, Setting(...)]``), by name
    in declaration order; ``panel``: the CLI help panel of those that name none."""
    found = {}
    for name, annotation in spec.__annotations__.items():
        kind, setting = annotation.__origin__, annotation.__metadata__[0]
        setting.name, setting.kind = name, kind
        setting.panel = setting.panel or panel
        found[name] = setting
    return found


def defaults(settings: dict[str, Setting]) -> SimpleNamespace:
    """A group's declared defaults as attributes (``TRAIN.val_split``)."""
    return SimpleNamespace(**{name: s.default for name, s in settings.items()})
