"""Pydantic schemas shared by the HTTP API and ``quotegen generate --json``: one contract.

Constraints live in ``Field(...)`` so validation errors explain themselves (the field, the
allowed range). This module imports only pydantic: the CLI's fast paths may use it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_NEW_TOKENS = 2048
MAX_SAMPLES = 16
MAX_STOP_STRINGS = 8
MAX_STOP_LENGTH = 64
MAX_SEED = 2**53 - 1  # the largest integer every JSON client reads exactly

FinishReason = Literal["stop", "length", "cancelled"]


# Each constraint is written once, as a type, and used by the settings and by every request
# schema that lets a client override a setting.
MaxNewTokens = Annotated[
    int, Field(ge=1, le=MAX_NEW_TOKENS, description="Most tokens to generate after the prompt.")
]
MinNewTokens = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_NEW_TOKENS,
        description="End-of-text is suppressed until this many tokens have been generated.",
    ),
]
DoSample = Annotated[bool, Field(description="Sample (true) or take the likeliest token (false).")]
Temperature = Annotated[
    float, Field(ge=0.0, le=5.0, allow_inf_nan=False, description="0 means greedy decoding.")
]
TopK = Annotated[int, Field(ge=0, le=100_000, description="Keep the k likeliest tokens; 0 = off.")]
TopP = Annotated[
    float, Field(gt=0.0, le=1.0, allow_inf_nan=False, description="Nucleus sampling; 1 = off.")
]
RepetitionPenalty = Annotated[
    float, Field(ge=0.5, le=3.0, allow_inf_nan=False, description="1 = no penalty.")
]
Samples = Annotated[int, Field(ge=1, le=MAX_SAMPLES, description="Samples per prompt.")]
Seed = Annotated[
    int, Field(ge=0, le=MAX_SEED, description="Same seed + input + settings = same output.")
]
StopString = Annotated[str, Field(min_length=1, max_length=MAX_STOP_LENGTH)]
StopStrings = Annotated[
    list[StopString],
    Field(
        max_length=MAX_STOP_STRINGS,
        description="Stop when the continuation (after some text) contains one of these.",
    ),
]


class GenerationSettings(BaseModel):
    """How to generate: the same settings for the CLI, the library and every HTTP route.

    Defaults suit short quotes: sampling with a mild repetition penalty, stopping at the end
    of the first line (once the continuation has some text) or at end-of-text. Strict: JSON
    ``false`` is not a seed and ``0`` is not a boolean.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)

    max_new_tokens: MaxNewTokens = 40
    min_new_tokens: MinNewTokens = 0
    do_sample: DoSample = True
    temperature: Temperature = 0.9
    top_k: TopK = 50
    top_p: TopP = 0.9
    repetition_penalty: RepetitionPenalty = 1.1
    n: Samples = 1
    seed: Seed | None = None
    stop: StopStrings = Field(default_factory=lambda: ["\n"])
    clean: bool = Field(True, description="Tidy the text like seed 2's clean_text.")

    @model_validator(mode="after")
    def _check_lengths(self) -> GenerationSettings:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) must not exceed "
                f"max_new_tokens ({self.max_new_tokens})"
            )
        return self

    @property
    def greedy(self) -> bool:
        # Below 1e-3 sampling is greedy in all but name, and dividing logits by it overflows.
        return not self.do_sample or self.temperature < 1e-3


class GenerationResult(BaseModel):
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


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    """Every HTTP error answers with this body."""

    error: ErrorBody


# -- HTTP request and response schemas ---------------------------------------------------------

MAX_PROMPTS = 64


class SettingsOverrides(BaseModel):
    """Optional generation settings a client may add to the seed routes; absent = route default."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_new_tokens: MaxNewTokens | None = None
    min_new_tokens: MinNewTokens | None = None
    do_sample: DoSample | None = None
    temperature: Temperature | None = None
    top_k: TopK | None = None
    top_p: TopP | None = None
    repetition_penalty: RepetitionPenalty | None = None
    seed: Seed | None = None
    stop: StopStrings | None = None

    def apply(self, base: GenerationSettings) -> GenerationSettings:
        """``base`` with the given fields replaced, validated again as a whole."""
        given = self.model_dump(exclude_none=True, include=set(SettingsOverrides.model_fields))
        return GenerationSettings(**{**base.model_dump(), **given})


class Seed1Request(SettingsOverrides):
    """Seed 1's ``POST /generate`` body; only ``text`` is required."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"text": "life is"}, {"text": "life is", "seed": 42}]},
    )

    text: str = Field(description="The prompt; the response repeats it before the continuation.")


class Seed1Response(BaseModel):
    generated_text: str = Field(examples=["life is a journey, not a destination."])


class Seed2Query(SettingsOverrides):
    """Seed 2's ``POST /generate_quote`` query parameters; only ``prompt`` is required."""

    # Query strings are text: numbers and booleans must be parsed from them.
    model_config = ConfigDict(extra="ignore", strict=False)

    prompt: str = Field(
        description="The prompt; empty picks one of seed 2's default prompts.",
        examples=["life is"],
    )


class GenerateRequest(BaseModel):
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


class GenerateResponse(BaseModel):
    results: list[GenerationResult]


class StreamRequest(BaseModel):
    """The native streaming API: one prompt, its continuation as server-sent events."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"prompt": "life is", "settings": {"seed": 7}}]},
    )

    prompt: str
    settings: GenerationSettings = Field(default_factory=lambda: GenerationSettings())


class CompletionRequest(BaseModel):
    """OpenAI's legacy ``POST /v1/completions`` request (the fields this server honours)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"prompt": "life is", "max_tokens": 24, "temperature": 0.8, "seed": 1}]
        },
    )

    model: str | None = Field(None, description="Must name the served model (GET /v1/models).")
    prompt: str | list[str] = Field(description="A prompt or a list of prompts.")
    max_tokens: MaxNewTokens = 16
    min_tokens: MinNewTokens = 0
    temperature: Temperature = 1.0
    top_p: TopP = 1.0
    top_k: TopK = 0
    repetition_penalty: RepetitionPenalty = 1.0
    n: Samples = 1
    stop: StopString | StopStrings | None = None
    seed: Seed | None = None
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    echo: bool = False
    logprobs: None = Field(None, description="Not supported; must be null.")
    presence_penalty: Annotated[float, Field(ge=0.0, le=0.0)] = 0.0
    frequency_penalty: Annotated[float, Field(ge=0.0, le=0.0)] = 0.0
    best_of: Annotated[int, Field(ge=1, le=1)] | None = None
    user: str | None = None

    @field_validator("prompt")
    @classmethod
    def _check_prompts(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_PROMPTS:
            raise ValueError(f"prompt lists must hold 1 to {MAX_PROMPTS} prompts")
        return value

    @field_validator("stop")
    @classmethod
    def _one_stop_is_a_list(cls, value: str | list[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def settings(self) -> GenerationSettings:
        stop = self.stop if isinstance(self.stop, list) else []
        return GenerationSettings(
            max_new_tokens=self.max_tokens,
            min_new_tokens=self.min_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            n=self.n,
            seed=self.seed,
            stop=stop,
            clean=False,
        )


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "quotegen"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Seed2Message(BaseModel):
    message: str = Field(examples=["This is Quote Generation API test"])


class Health(BaseModel):
    status: Literal["ok", "loading", "failed"]
    detail: str | None = None


class Limits(BaseModel):
    max_batch_size: int
    max_wait_ms: float
    max_queue: int
    request_timeout_s: float
    max_body_bytes: int
    max_prompt_bytes: int
    max_prompts: int
    max_new_tokens: int
    max_samples: int
    context_length: int


class Info(BaseModel):
    model: str
    revision: str | None
    device: str
    dtype: str
    quantize: str = Field(description="none, or int8 (dynamic int8 linear layers).")
    version: str
    limits: Limits
