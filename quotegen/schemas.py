"""Pydantic schemas shared by the HTTP API and the CLI's ``--json`` output: one contract.

Results, reports (``models --json``, ``train --json``, ``eval --json``) and the HTTP request
and response bodies. Settings and their defaults live in ``quotegen.settings``. This module
imports only pydantic: the CLI's fast paths may use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
)

from quotegen.config import (
    GENERATION_SETTINGS,
    MAX_PROMPTS,
    MAX_SEED,
    SERVE_LIMITS,
    SERVE_SETTINGS,
)
from quotegen.settings import FinishReason, GenerationSettings, with_settings


class Schema(BaseModel):
    """Every schema here: built when first used, not at import (the CLI's fast paths import
    this module and use one or two of them)."""

    model_config = ConfigDict(defer_build=True)


class TokenLogprobs(Schema):
    """Log-probabilities of a text's tokens, in the shape of OpenAI's completions API.

    They are the model's own (natural log), after the hard constraints quotegen always applies
    (the model's suppress_tokens, whole-word first tokens) and before the sampling settings
    (temperature, top-k, top-p, repetition penalty) reshape them.
    """

    tokens: list[str] = Field(description="Each token's text; together they spell the text.")
    token_logprobs: list[float | None] = Field(
        description="Each token's log-probability (null for a text's first prompt token)."
    )
    top_logprobs: list[dict[str, float] | None] = Field(
        description="Per token, the likeliest alternatives (logprobs of them), and the token."
    )
    text_offset: list[int] = Field(description="Where each token starts in the text.")


class GenerationResult(Schema):
    """One generated text: a line of ``generate --json`` and the native HTTP response item."""

    index: int = Field(description="Position of the prompt in the input (0-based).")
    sample: int = Field(0, description="Which of the n samples for this prompt (0-based).")
    prompt: str = Field(description="The prompt actually used (a default one if it was empty).")
    text: str = Field(description="Prompt + continuation, cleaned unless settings.clean is off.")
    completion: str = Field(description="The continuation alone, exactly as generated.")
    model: str
    settings: GenerationSettings
    seed: int = Field(description="The seed of this very sample; reuse it to reproduce it.")
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    seconds: float = Field(
        description="Wall time from this sample's first step (its prompt) to its last token."
    )
    logprobs: TokenLogprobs | None = Field(
        None, description="The completion's tokens scored (when settings.logprobs is set)."
    )
    prompt_logprobs: TokenLogprobs | None = Field(
        None, description="The prompt's tokens scored (when settings.prompt_logprobs is set)."
    )
    score: float | None = Field(
        None,
        description="The scorer's log-odds that a reader keeps this quote (when it was chosen "
        "as the best of several candidates, best_of > 1).",
    )


class ErrorBody(Schema):
    """OpenAI's error object, so SDKs show the message: ``type`` is OpenAI's class of error
    (from the HTTP status), ``code`` quotegen's own name for it, ``param`` the field at fault."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(Schema):
    """Every HTTP error answers with this body."""

    error: ErrorBody


# -- reports ----------------------------------------------------------------------------------


class ModelInfo(Schema):
    """What a loaded model is and where it runs (``/info``, status lines)."""

    name: str
    revision: str | None = None
    device: str
    dtype: str
    quantize: str = Field(
        "none", description="none, int8 or int4 (weight-only quantized linear layers)."
    )
    context_length: int
    chat_template: bool = Field(
        False, description="Whether the tokenizer has a chat template (chat completions use it)."
    )
    generation_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings the model's generation_config.json declares: its defaults here.",
    )

    @property
    def precision(self) -> str:
        """What the weights compute in: float32, int8, ..."""
        return self.quantize if self.quantize != "none" else self.dtype


class LocalModelEntry(Schema):
    """A model usable without network (a line of ``quotegen models --json``)."""

    name: str
    revision: str | None
    commit: str | None
    size_bytes: int
    #: The folder it loads from (for a model not prepared yet: where it comes from).
    path: Path
    default: bool = False
    #: False while a first use still has to fetch, convert or merge it.
    prepared: bool = True
    #: The generation settings it declares (its generation_config.json): these apply where a
    #: run leaves a setting unset, before quotegen's own defaults.
    defaults: dict[str, Any] = Field(default_factory=dict)


class EpochReport(Schema):
    epoch: int
    train_loss: float
    val_perplexity: float
    seconds: float


class TrainReport(Schema):
    """What ``quotegen train --json`` prints (and the model card records)."""

    out: Path
    train_quotes: int
    val_quotes: int
    initial_val_perplexity: float
    epochs: list[EpochReport] = Field(default_factory=list)
    best_epoch: int | None = None
    interrupted: bool = False
    seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def best_val_perplexity(self) -> float | None:
        if self.best_epoch is None:
            return None
        return next(e.val_perplexity for e in self.epochs if e.epoch == self.best_epoch)


class EvalReport(Schema):
    """What ``quotegen eval --json`` prints: token-level perplexity on a quotes file."""

    model: str
    precision: str
    data: str
    quotes: int
    tokens: int
    nll_per_token: float | None
    perplexity: float
    seconds: float


# -- HTTP request and response schemas ---------------------------------------------------------


class _SettingsOverrides(Schema):
    """Optional generation settings a client may add to the seed routes; absent = route default.
    The fields are the declared settings a client may override (``Setting.override``)."""

    model_config = ConfigDict(strict=True)

    def given(self) -> dict[str, Any]:
        """The settings this request sets."""
        return self.model_dump(exclude_none=True, include=set(_OVERRIDES))

    def apply(self, base: GenerationSettings) -> GenerationSettings:
        """``base`` with the given fields replaced, validated again as a whole."""
        return GenerationSettings(**{**base.model_dump(), **self.given()})


_OVERRIDES = [name for name, setting in GENERATION_SETTINGS.items() if setting.override]

if TYPE_CHECKING:
    SettingsOverrides = _SettingsOverrides
else:
    SettingsOverrides = with_settings(
        "SettingsOverrides",
        _SettingsOverrides,
        {name: (name, None) for name in _OVERRIDES},
        extra="forbid",
    )


class Seed1Request(SettingsOverrides):
    """Seed 1's ``POST /generate`` body; only ``text`` is required."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"text": "life is"}, {"text": "life is", "seed": 42}]},
    )

    text: str = Field(description="The prompt; the response repeats it before the continuation.")


class Seed1Response(Schema):
    generated_text: str = Field(examples=["life is a journey, not a destination."])


class Seed2Query(SettingsOverrides):
    """Seed 2's ``POST /generate_quote`` query parameters; only ``prompt`` is required."""

    # Query strings are text: numbers and booleans must be parsed from them.
    model_config = ConfigDict(extra="ignore", strict=False)

    prompt: str = Field(
        description="The prompt; empty picks one of seed 2's default prompts.",
        examples=["life is"],
    )


class GenerateRequest(Schema):
    """The native API: many prompts, full settings, results in the ``generate --json`` schema."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"prompts": ["life is", "love is"], "settings": {"seed": 42, "n": 2}}]
        },
    )

    prompts: list[str] = Field(min_length=1, max_length=MAX_PROMPTS)
    settings: GenerationSettings = Field(default_factory=lambda: GenerationSettings())
    start_index: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="The first prompt's index in a larger run split over several requests: "
        "indices and seeds then follow it as if the run were one request.",
    )


class GenerateResponse(Schema):
    results: list[GenerationResult]


class StreamRequest(Schema):
    """The native streaming API: one prompt, its continuation as server-sent events."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"prompt": "life is", "settings": {"seed": 7}}]},
    )

    prompt: str
    settings: GenerationSettings = Field(default_factory=lambda: GenerationSettings())


class Seed2Message(Schema):
    message: str = Field(examples=["This is Quote Generation API test"])


class Health(Schema):
    status: Literal["ok", "loading", "failed"]
    detail: str | None = None


class _Limits(Schema):
    """What the server accepts: its declared limits (``quotegen.config.Serve``), the fixed
    ones, and the model's context."""

    max_prompts: int
    max_new_tokens: int
    max_samples: int
    context_length: int


if TYPE_CHECKING:
    Limits = _Limits
else:
    Limits = with_settings(
        "Limits", _Limits, {name: (SERVE_SETTINGS[name], ...) for name in SERVE_LIMITS}
    )


class Info(Schema):
    model: str
    revision: str | None
    device: str
    dtype: str
    quantize: str = Field(description="none, int8 or int4 (weight-only quantized linear layers).")
    chat_template: bool = Field(
        description="Chat completions render the model's chat template (else: a base model "
        "continues the last message as a quote)."
    )
    version: str
    limits: Limits
    defaults: GenerationSettings = Field(
        description="What a native request gets for the settings it leaves unset: the "
        "model's generation_config.json over quotegen's defaults."
    )
