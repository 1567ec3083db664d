"""OpenAI's completions, chat completions and models API bodies, as the official SDK sends
and reads them: the request models own the API's defaults (vLLM's way); responses and
streamed chunks are built from them by ``quotegen.openai.format``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_serializer, model_validator

from quotegen.config import GENERATION_SETTINGS, MAX_PROMPTS, MAX_SAMPLES
from quotegen.schemas import Schema, TokenLogprobs
from quotegen.settings import setting_field, setting_type, with_settings

if TYPE_CHECKING:
    Stop = str | list[str]
else:
    Stop = setting_type("stop", one_or_list=True)

#: The request fields that are generation settings, by their ``GenerationSettings`` names.
OPENAI_NAMES = {s.openai: name for name, s in GENERATION_SETTINGS.items() if s.openai}


class _OpenAIRequest(Schema):
    """What OpenAI's completions and chat completions requests share: the served model, the
    sampling settings this server honours (plus vLLM's extras: each declared setting with an
    OpenAI name, defaulting to OpenAI's own value), and streaming."""

    model_config = ConfigDict(strict=True)
    #: OpenAI's own defaults, for what neither the request nor the model's generation config
    #: sets (as vLLM does): 16 tokens, temperature 1, no nucleus, no top-k, no penalty, no stop.
    DEFAULTS: ClassVar[dict[str, object]] = {
        name: s.openai_default
        for name, s in GENERATION_SETTINGS.items()
        if s.openai_default is not ...
    }

    model: str | None = Field(None, description="Must name the served model (GET /v1/models).")
    stop: Stop | None = Field(None, description="A stop string, or a list of them.")
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    presence_penalty: Annotated[float, Field(ge=0.0, le=0.0)] = 0.0
    frequency_penalty: Annotated[float, Field(ge=0.0, le=0.0)] = 0.0
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _one_stop_is_a_list(cls, value: str | list[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    def requested(self) -> dict[str, Any]:
        """The generation settings this request sets, by their ``GenerationSettings`` names
        (unset fields take the model's defaults, then OpenAI's ``DEFAULTS``, which also return
        the text as generated: no cleaning)."""
        values = self.model_dump(include=self.model_fields_set & set(OPENAI_NAMES))
        return {OPENAI_NAMES[k]: v for k, v in values.items() if v is not None}


_NAMES = OPENAI_NAMES.items()
if TYPE_CHECKING:
    OpenAIRequest = _OpenAIRequest
else:
    OpenAIRequest = with_settings(
        "OpenAIRequest",
        _OpenAIRequest,
        {field: (name, GENERATION_SETTINGS[name].openai_default) for field, name in _NAMES},
        extra="forbid",
    )


class CompletionRequest(OpenAIRequest):
    """OpenAI's legacy ``POST /v1/completions`` request (the fields this server honours)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"prompt": "life is", "max_tokens": 24, "temperature": 0.8, "seed": 1}]
        },
    )

    prompt: str | list[str] = Field(description="A prompt or a list of prompts.")
    echo: bool = Field(False, description="Return the prompt before the completion.")
    logprobs: int | None = setting_field("logprobs")
    best_of: int | None = Field(
        None,
        ge=1,
        le=MAX_SAMPLES * MAX_SAMPLES,
        description="Candidates written per prompt (at least n), the n best returned, as "
        "judged by the model's scorer; not with stream. Default: the model's own best_of "
        "for each quote.",
    )

    @field_validator("prompt")
    @classmethod
    def _check_prompts(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_PROMPTS:
            raise ValueError(f"prompt lists must hold 1 to {MAX_PROMPTS} prompts")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @model_validator(mode="after")
    def _check_best_of(self) -> CompletionRequest:
        n = getattr(self, "n", None) or 1
        if self.best_of is not None and self.best_of < n:
            raise ValueError(f"best_of ({self.best_of}) must be at least n ({n})")
        if self.best_of is not None and self.best_of > 1 and self.stream:
            raise ValueError("best_of cannot be used with stream: candidates are not streamed")
        return self

    def requested(self) -> dict[str, Any]:
        scoring: dict[str, Any] = {
            "logprobs": self.logprobs,
            "prompt_logprobs": self.echo and self.logprobs is not None,
        }
        if self.best_of is not None:  # OpenAI counts candidates per prompt, quotegen per quote
            scoring["best_of"] = math.ceil(self.best_of / (getattr(self, "n", None) or 1))
        return super().requested() | scoring


class CompletionChoice(Schema):
    text: str
    index: int
    logprobs: TokenLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class ChatContentPart(Schema):
    type: Literal["text"] = Field(description="Only text parts: this server serves text models.")
    text: str


class ChatMessage(Schema):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ChatContentPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(OpenAIRequest):
    """OpenAI's ``POST /v1/chat/completions`` request (the fields this server honours)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"messages": [{"role": "user", "content": "life is"}], "seed": 1}]
        },
    )

    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = setting_field("max_new_tokens", None)
    max_completion_tokens: int | None = setting_field("max_new_tokens", None)
    logprobs: bool = False
    top_logprobs: int | None = setting_field("logprobs")

    @model_validator(mode="after")
    def _check_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def requested(self) -> dict[str, Any]:
        given = super().requested()
        if self.max_completion_tokens is not None:  # the newer name wins
            given["max_new_tokens"] = self.max_completion_tokens
        if self.logprobs:
            given["logprobs"] = self.top_logprobs or 0
        return given


class ChatTopLogprob(Schema):
    token: str
    logprob: float
    bytes: list[int]


class ChatTokenLogprob(ChatTopLogprob):
    top_logprobs: list[ChatTopLogprob]


class ChatLogprobs(Schema):
    content: list[ChatTokenLogprob]


class ChatReply(Schema):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(Schema):
    index: int
    message: ChatReply
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class Usage(Schema):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(Schema):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ChatDelta(Schema):
    """What a streamed chat chunk adds to its choice: the role first, then content."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _only_set(self, handler: Any) -> dict[str, Any]:
        # OpenAI's deltas carry only what they add ({} on the last chunk).
        return {key: value for key, value in handler(self).items() if value is not None}


class ChatChunkChoice(Schema):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(Schema):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class ChatCompletionResponse(Schema):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(Schema):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "quotegen"


class ModelList(Schema):
    object: Literal["list"] = "list"
    data: list[ModelCard]
