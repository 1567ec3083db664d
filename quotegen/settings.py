"""Validated settings: generation, the server's limits, training.

Each is a pydantic model whose ``Field``s carry the allowed range and a description; the
defaults come from the tables in ``quotegen.config`` (declared there once). The CLI maps their
validation errors to flag errors, and the server reports them in ``/info``. This module
imports only pydantic.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from quotegen.config import GENERATION_SETTINGS, SERVE, TRAIN

if TYPE_CHECKING:
    from quotegen.config import Generation

MAX_BATCH_SIZE = 256

FinishReason = Literal["stop", "length", "cancelled"]
ModelT = TypeVar("ModelT", bound=BaseModel)


def setting_field(name: str, default: Any = ..., **extra: Any) -> Any:
    """A pydantic ``Field`` for a declared setting: its range and description, and
    ``default`` (its declared default unless given)."""
    setting = GENERATION_SETTINGS[name]
    value = setting.default if default is ... else default
    if isinstance(value, list):
        extra["default_factory"] = functools.partial(list, value)
    else:
        extra["default"] = value
    if setting.kind is float:
        extra["allow_inf_nan"] = False
    extra.update(setting.bounds)
    field: Any = Field(description=setting.help, **extra)
    return field


def setting_type(name: str, one_or_list: bool = False) -> Any:
    """A declared setting's value type, a list's items constrained as declared (its length is
    the field's: ``setting_field``); ``one_or_list``: one item, or a list of them with its
    length constrained here (OpenAI's ``stop``, whose field has no bounds)."""
    setting = GENERATION_SETTINGS[name]
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
    fields: Mapping[str, tuple[str, Any]],
    **config: Any,
) -> type[ModelT]:
    """A model called ``name``: ``base`` plus a field for each setting in ``fields`` (field
    name -> (setting name, default; ``...``: the declared one)) that ``base`` does not declare
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
        shortest, longest = self.min_new_tokens, self.max_new_tokens  # type: ignore[attr-defined]
        if shortest > longest:
            raise ValueError(
                f"min_new_tokens ({shortest}) must not exceed max_new_tokens ({longest})"
            )
        return self

    @property
    def greedy(self) -> bool:
        # Below 1e-3 sampling is greedy in all but name, and dividing logits by it overflows.
        return not self.do_sample or self.temperature < 1e-3  # type: ignore[attr-defined]


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


class ServeConfig(BaseModel):
    """What ``quotegen serve`` passes to the app: access, batching and request limits."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    api_key: str | None = Field(
        None, description="Require 'Authorization: Bearer KEY' on every generation route."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Allowed CORS origins; none by default."
    )
    max_batch_size: int = Field(
        SERVE.max_batch_size, ge=1, le=MAX_BATCH_SIZE, description="Rows decoded together."
    )
    max_wait_ms: float = Field(
        SERVE.max_wait_ms, ge=0, le=1000, description="How long a new batch waits for company."
    )
    max_queue: int = Field(
        SERVE.max_queue, ge=1, le=100_000, description="Queued rows before 503 + Retry-After."
    )
    request_timeout_s: float = Field(
        SERVE.request_timeout_s, ge=0.1, le=3600, description="Per-request time limit in seconds."
    )
    max_body_bytes: int = Field(
        SERVE.max_body_bytes, ge=1024, description="Largest request body accepted, in bytes."
    )
    max_prompt_bytes: int = Field(
        SERVE.max_prompt_bytes, ge=1, description="Largest prompt accepted, in UTF-8 bytes."
    )
    drain_timeout_s: float = Field(
        SERVE.drain_timeout_s,
        ge=0,
        le=3600,
        description="On SIGTERM, seconds to finish work.",
    )


class TrainConfig(BaseModel):
    """Everything that shapes a training run (recorded in the model card)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    out: Path
    base: str | None = None
    from_scratch: bool = False
    epochs: int = Field(TRAIN.epochs, ge=1, le=1000)
    batch_size: int = Field(TRAIN.batch_size, ge=1, le=1024)
    max_length: int = Field(TRAIN.max_length, ge=8, le=4096, description="Tokens per quote.")
    learning_rate: float = Field(TRAIN.learning_rate, gt=0, lt=1)
    warmup_ratio: float = Field(TRAIN.warmup_ratio, ge=0.0, le=0.5)
    weight_decay: float = Field(TRAIN.weight_decay, ge=0.0, le=1.0)
    grad_clip: float = Field(TRAIN.grad_clip, ge=0.01, le=100.0)
    val_split: float = Field(TRAIN.val_split, ge=0.001, le=0.5)
    seed: int = Field(TRAIN.seed, ge=0)
    device: str = "auto"
    # From-scratch model shape.
    vocab_size: int = Field(TRAIN.vocab_size, ge=300, le=100_000)
    n_layer: int = Field(TRAIN.n_layer, ge=1, le=48)
    n_head: int = Field(TRAIN.n_head, ge=1, le=64)
    n_embd: int = Field(TRAIN.n_embd, ge=8, le=4096)
    context: int = Field(TRAIN.context, ge=16, le=8192)
    dropout: float = Field(TRAIN.dropout, ge=0.0, le=0.9)
    tokenizer: Literal["bpe", "words"] = Field(
        TRAIN.tokenizer,  # type: ignore[arg-type]
        description="From scratch: byte-level BPE, or whole dictionary words "
        "(quotegen.training.vocab).",
    )
    min_count: int = Field(
        TRAIN.min_count, ge=1, le=1000, description="Words: fewest sightings to be a piece."
    )
    max_words: int | None = Field(
        TRAIN.max_words,
        ge=1,
        le=1_000_000,
        description="Words: at most this many word pieces, the most frequent (default: all).",
    )
    spelling_pieces: int = Field(
        TRAIN.spelling_pieces,
        ge=0,
        le=100_000,
        description="Words: sub-word pieces that spell the other words (never written).",
    )
    vocab_from: Path | None = Field(
        None,
        description="Words: count the vocabulary on this text file instead of the training "
        "split (so a large pre-training source does not displace the sayings' words).",
    )
    save_dtype: Literal["float32", "float16", "bfloat16"] = Field(
        TRAIN.save_dtype,  # type: ignore[arg-type]
        description="Precision of the saved weights (they load as float32 on a CPU).",
    )
    mixed_precision: Literal["no", "bf16"] = Field(
        TRAIN.mixed_precision,  # type: ignore[arg-type]
        description="Matrix products in bfloat16 (autocast), weights and optimiser in float32.",
    )
    lora: bool = Field(False, description="Train a LoRA adapter (peft) instead of every weight.")
    lora_r: int = Field(TRAIN.lora_r, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: int = Field(TRAIN.lora_alpha, ge=1, le=4096, description="LoRA scale numerator.")
    lora_dropout: float = Field(TRAIN.lora_dropout, ge=0.0, le=0.9)
    lora_targets: str = Field(
        TRAIN.lora_targets,
        pattern=r"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*$",
        description="Modules that get adapters: auto (peft's choice for the architecture), "
        "names (q_proj,k_proj,v_proj,o_proj) or all-linear.",
    )
    lora_init: Path | None = Field(
        None,
        description="Start the LoRA adapter from this adapter's weights (train it further).",
    )
    frame_token: str | None = Field(
        None,
        min_length=1,
        description="Token that starts and ends every quote, and so stops generation "
        "(e.g. <|endoftext|>); the saved tokenizer adds it and drops any chat template.",
    )
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimiser steps (the schedule fits them)."
    )
    checkpoint_every: int = Field(
        TRAIN.checkpoint_every,
        ge=0,
        description="Steps between resumable checkpoints in OUT (0: none); a run with the "
        "same settings resumes from the last one.",
    )
    allow_pickle: bool = False
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.from_scratch == (self.base is not None):
            raise ValueError("Choose one: --base MODEL to fine-tune, or --from-scratch.")
        if self.from_scratch and (self.lora or self.frame_token):
            raise ValueError("--lora and --frame-token fine-tune a --base model.")
        if self.lora_init is not None and not self.lora:
            raise ValueError("--lora-init needs --lora.")
        if self.vocab_from is not None and not (self.from_scratch and self.tokenizer == "words"):
            raise ValueError("--vocab-from needs --from-scratch --tokenizer words.")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"--n-embd ({self.n_embd}) must be a multiple of --n-head ({self.n_head})."
            )
        return self
