"""Pydantic schemas shared by the HTTP API and ``quotegen generate --json``: one contract.

Constraints live in ``Field(...)`` so validation errors explain themselves (the field, the
allowed range). This module imports only pydantic: the CLI's fast paths may use it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_NEW_TOKENS = 2048
MAX_SAMPLES = 16
MAX_STOP_STRINGS = 8
MAX_STOP_LENGTH = 64
MAX_SEED = 2**63 - 1

FinishReason = Literal["stop", "length", "cancelled"]


class GenerationSettings(BaseModel):
    """How to generate: the same settings for the CLI, the library and every HTTP route.

    Defaults suit short quotes: sampling with a mild repetition penalty, stopping at the end
    of the first line (once the continuation has some text) or at end-of-text.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_new_tokens: int = Field(
        40, ge=1, le=MAX_NEW_TOKENS, description="Most tokens to generate after the prompt."
    )
    min_new_tokens: int = Field(
        0,
        ge=0,
        le=MAX_NEW_TOKENS,
        description="End-of-text is suppressed until this many tokens have been generated.",
    )
    do_sample: bool = Field(True, description="Sample (true) or pick the likeliest token (false).")
    temperature: float = Field(
        0.9, ge=0.0, le=5.0, allow_inf_nan=False, description="0 means greedy decoding."
    )
    top_k: int = Field(50, ge=0, le=100_000, description="Keep the k likeliest tokens; 0 = off.")
    top_p: float = Field(
        0.9, gt=0.0, le=1.0, allow_inf_nan=False, description="Nucleus sampling; 1 = off."
    )
    repetition_penalty: float = Field(
        1.1, ge=0.5, le=3.0, allow_inf_nan=False, description="1 = no penalty."
    )
    n: int = Field(1, ge=1, le=MAX_SAMPLES, description="Samples per prompt.")
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Same seed + input + settings = same output."
    )
    stop: list[str] = Field(
        default_factory=lambda: ["\n"],
        max_length=MAX_STOP_STRINGS,
        description="Stop when the continuation (after some text) contains one of these.",
    )
    clean: bool = Field(True, description="Tidy the text like seed 2's clean_text.")

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item:
                raise ValueError("stop strings must not be empty")
            if len(item) > MAX_STOP_LENGTH:
                raise ValueError(f"stop strings must be at most {MAX_STOP_LENGTH} characters")
        return value

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
        return not self.do_sample or self.temperature == 0.0


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
    seconds: float = Field(description="Wall time of the batch that produced this result.")


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    """Every HTTP error answers with this body."""

    error: ErrorBody
