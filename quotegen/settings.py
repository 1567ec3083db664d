"""Validated settings: generation, the server's limits, training.

Each is a pydantic model derived from the declarations in ``quotegen.config`` (``Setting``):
every declared setting becomes a ``Field`` with its default, range and description, so nothing
is written twice. The CLI maps their validation errors to flag errors, and the server reports
them in ``/info``. This module imports only pydantic.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from quotegen.config import GENERATION_SETTINGS, SERVE_SETTINGS, TRAIN_SETTINGS, Setting

if TYPE_CHECKING:
    from quotegen.config import Generation, Serve, Train

FinishReason = Literal["stop", "length", "cancelled"]
ModelT = TypeVar("ModelT", bound=BaseModel)


def _declared(setting: str | Setting) -> Setting:
    """A declared setting, or a generation setting by name."""
    return GENERATION_SETTINGS[setting] if isinstance(setting, str) else setting


def setting_field(name: str | Setting, default: Any = ..., **extra: Any) -> Any:
    """A pydantic ``Field`` for a declared setting (a generation setting's name, or any
    ``Setting``): its range and description, and ``default`` (its declared default unless
    given; a declared ``...`` makes it required)."""
    setting = _declared(name)
    value = setting.default if default is ... else default
    if value is ...:
        extra["default"] = ...
    elif isinstance(value, list):
        extra["default_factory"] = functools.partial(list, value)
    else:
        extra["default"] = value
    if setting.kind is float:
        extra["allow_inf_nan"] = False
    extra.update(setting.bounds)
    field: Any = Field(description=setting.help, **extra)
    return field


def setting_type(name: str | Setting, one_or_list: bool = False) -> Any:
    """A declared setting's value type: its choices as a ``Literal``, a list's items
    constrained as declared (its length is the field's: ``setting_field``); ``one_or_list``:
    one item, or a list of them with its length constrained here (OpenAI's ``stop``, whose
    field has no bounds)."""
    setting = _declared(name)
    if setting.choices is not None:
        return Literal[setting.choices]
    if setting.item_length is None:
        return setting.kind
    shortest, longest = setting.item_length
    item = Annotated[str, Field(min_length=shortest, max_length=longest)]
    if one_or_list:
        bounded: dict[str, Any] = dict(setting.bounds)
        return item | Annotated[list[item], Field(**bounded)]
    return list[item]


def with_settings(
    name: str,
    base: type[ModelT],
    fields: Mapping[str, tuple[str | Setting, Any]],
    **config: Any,
) -> type[ModelT]:
    """A model called ``name``: ``base`` plus a field for each setting in ``fields`` (field
    name -> (setting, default; ``...``: the declared one)) that ``base`` does not declare
    itself: the models' setting fields, derived from the declarations, not written again."""
    own = set(base.model_fields)
    definitions: dict[str, Any] = {
        field: (setting_type(setting), setting_field(setting, default))
        for field, (setting, default) in fields.items()
        if field not in own
    }
    model: type[ModelT] = create_model(
        name,
        __base__=base,
        __module__=base.__module__,
        __doc__=base.__doc__,
        __cls_kwargs__=config,
        **definitions,
    )
    return model


class _GenerationRules(BaseModel):
    """How to generate: the same settings for the CLI, the library and every HTTP route.

    Defaults suit short quotes: sampling with a mild repetition penalty, stopping at the end
    of the first line (once the continuation has some text) or at end-of-text. Strict: JSON
    ``false`` is not a seed and ``0`` is not a boolean. The fields are the settings declared
    in ``quotegen.config.Generation``.
    """

    model_config = ConfigDict(validate_assignment=True, strict=True)

    @model_validator(mode="after")
    def _check_lengths(self) -> Any:
        settings = cast("GenerationSettings", self)
        shortest, longest = settings.min_new_tokens, settings.max_new_tokens
        if shortest > longest:
            raise ValueError(
                f"min_new_tokens ({shortest}) must not exceed max_new_tokens ({longest})"
            )
        return self

    @property
    def greedy(self) -> bool:
        # Below 1e-3 sampling is greedy in all but name, and dividing logits by it overflows.
        settings = cast("GenerationSettings", self)
        return not settings.do_sample or settings.temperature < 1e-3


if TYPE_CHECKING:

    class GenerationSettings(_GenerationRules, Generation):
        """The declared settings as typed attributes (the runtime model is derived)."""

else:
    GenerationSettings = with_settings(
        "GenerationSettings",
        _GenerationRules,
        {name: (name, ...) for name in GENERATION_SETTINGS},
        extra="forbid",
    )


#: The settings a model's ``generation_config.json`` may set, by their names there.
MODEL_DEFAULT_KEYS = {
    setting.model_key: name
    for name, setting in GENERATION_SETTINGS.items()
    if setting.model_key is not None
}


def model_defaults(generation_config: Mapping[str, Any]) -> dict[str, Any]:
    """The generation settings a model's ``generation_config.json`` declares, each kept only
    if it is valid here on its own (a value out of range is left to quotegen's default)."""
    found: dict[str, Any] = {}
    for key, name in MODEL_DEFAULT_KEYS.items():
        value = generation_config.get(key)
        if value is None:
            continue
        if isinstance(GENERATION_SETTINGS[name].default, list) and isinstance(value, str):
            value = [value]
        try:
            checked = GenerationSettings.model_validate({name: value})
        except ValidationError:
            continue
        found[name] = getattr(checked, name)
    return found


def resolve_settings(
    given: Mapping[str, Any],
    model: Mapping[str, Any],
    fallback: Mapping[str, Any] | None = None,
) -> GenerationSettings:
    """What the user set, over the model's own defaults, over ``fallback`` (an API's own
    defaults), over quotegen's. Raises ``ValidationError`` when the combination is invalid."""
    return GenerationSettings.model_validate({**(fallback or {}), **model, **given})


def _all(settings: Mapping[str, Setting]) -> dict[str, tuple[str | Setting, Any]]:
    return {name: (setting, ...) for name, setting in settings.items()}


class _ServeRules(BaseModel):
    """What ``quotegen serve`` passes to the app: access, batching and request limits. The
    fields are the settings declared in ``quotegen.config.Serve``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class _TrainRules(BaseModel):
    """Everything that shapes a training run (recorded in the model card). The fields are the
    settings declared in ``quotegen.config.Train``, and how the base is loaded."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    device: str = "auto"
    allow_pickle: bool = False
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _check(self) -> Any:
        run = cast("TrainConfig", self)
        if run.from_scratch == (run.base is not None):
            raise ValueError("Choose one: --base MODEL to fine-tune, or --from-scratch.")
        if run.from_scratch and (run.lora or run.frame_token):
            raise ValueError("--lora and --frame-token fine-tune a --base model.")
        if run.lora_init is not None and not run.lora:
            raise ValueError("--lora-init needs --lora.")
        if run.vocab_from is not None and not (run.from_scratch and run.tokenizer == "words"):
            raise ValueError("--vocab-from needs --from-scratch --tokenizer words.")
        if run.n_embd % run.n_head:
            raise ValueError(
                f"--n-embd ({run.n_embd}) must be a multiple of --n-head ({run.n_head})."
            )
        return self


if TYPE_CHECKING:

    class ServeConfig(_ServeRules, Serve):
        """The declared serve settings as typed attributes (the runtime model is derived)."""

    class TrainConfig(_TrainRules, Train):
        """The declared training settings as typed attributes (the runtime model is derived)."""

else:
    ServeConfig = with_settings("ServeConfig", _ServeRules, _all(SERVE_SETTINGS))
    TrainConfig = with_settings("TrainConfig", _TrainRules, _all(TRAIN_SETTINGS))
