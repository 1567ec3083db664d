"""OpenAI's completions, chat completions and models API bodies, as the official SDK sends
and reads them: the request models own the API's defaults (vLLM's way); responses and
streamed chunks are built from them by ``quotegen.openaiformat``."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from quotegen.config import MAX_PROMPTS
from quotegen.schemas import Schema, TokenLogprobs
from quotegen.settings import (
    Logprobs,
    MaxNewTokens,
    MinNewTokens,
    RepetitionPenalty,
    Samples,
    Seed,
    StopString,
    StopStrings,
    Temperature,
    TopK,
    TopP,
    WholeWords,
)


class OpenAIRequest(Schema):
    """What OpenAI's completions and chat completions requests share: the served model, the
    sampling settings this server honours (plus vLLM's extras), and streaming."""

    model_config = ConfigDict(extra="forbid", strict=True)
    #: OpenAI's own defaults, for what neither the request nor the model's generation config
    #: sets (as vLLM does): 16 tokens, temperature 1, no nucleus, no top-k, no penalty, no stop.
    DEFAULTS: ClassVar[dict[str, object]] = {
        "max_new_tokens": 16,
        "min_new_tokens": 0,
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "stop": [],
    }

    model: str | None = Field(None, description="Must name the served model (GET /v1/models).")
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
    presence_penalty: Annotated[float, Field(ge=0.0, le=0.0)] = 0.0
    frequency_penalty: Annotated[float, Field(ge=0.0, le=0.0)] = 0.0
    user: str | None = None
    whole_words: WholeWords | None = None

    #: The request fields that are generation settings, by their ``GenerationSettings`` names.
    _SETTINGS: ClassVar[dict[str, str]] = {
        "max_tokens": "max_new_tokens",
        "min_tokens": "min_new_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "repetition_penalty": "repetition_penalty",
        "n": "n",
        "seed": "seed",
        "stop": "stop",
        "whole_words": "whole_words",
    }

    @field_validator("stop")
    @classmethod
    def _one_stop_is_a_list(cls, value: str | list[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    def requested(self) -> dict[str, Any]:
        """The generation settings this request sets, by their ``GenerationSettings`` names
        (unset fields take the model's defaults, then OpenAI's: see the openai router).
        OpenAI's text is returned as generated (no cleaning)."""
        names = self._SETTINGS
        values = self.model_dump(include=self.model_fields_set & set(names))
        given = {names[k]: v for k, v in values.items() if v is not None}
        return given | {"clean": False}


class CompletionRequest(OpenAIRequest):
    """OpenAI's legacy ``POST /v1/completions`` request (the fields this server honours)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"prompt": "life is", "max_tokens": 24, "temperature": 0.8, "seed": 1}]
        },
    )

    prompt: str | list[str] = Field(description="A prompt or a list of prompts.")
    max_tokens: MaxNewTokens = 16
    echo: bool = Field(False, description="Return the prompt before the completion.")
    logprobs: Logprobs | None = None
    best_of: Annotated[int, Field(ge=1, le=1)] | None = None

    @field_validator("prompt")
    @classmethod
    def _check_prompts(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_PROMPTS:
            raise ValueError(f"prompt lists must hold 1 to {MAX_PROMPTS} prompts")
        return value

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def requested(self) -> dict[str, Any]:
        scoring = {
            "logprobs": self.logprobs,
            "prompt_logprobs": self.echo and self.logprobs is not None,
        }
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
    max_tokens: MaxNewTokens | None = None
    max_completion_tokens: MaxNewTokens | None = None
    logprobs: bool = False
    top_logprobs: Logprobs | None = None

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
