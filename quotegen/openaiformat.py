"""OpenAI's response objects built from quotegen's results: shared by the HTTP routes and
``quotegen batch``'s OpenAI batch output."""

from __future__ import annotations

from typing import Literal

from quotegen.openaischemas import CompletionChoice, Usage
from quotegen.schemas import GenerationResult, TokenLogprobs


def completion_choices(results: list[GenerationResult], echo: bool) -> list[CompletionChoice]:
    """The ``choices`` of a completions response (the prompt first with ``echo``)."""
    return [
        CompletionChoice(
            text=r.text if echo else r.completion,
            index=i,
            logprobs=completion_logprobs(r, echo),
            finish_reason=finish_reason(r),
        )
        for i, r in enumerate(results)
    ]


def finish_reason(result: GenerationResult) -> Literal["stop", "length"]:
    return "length" if result.finish_reason == "length" else "stop"


def completion_logprobs(result: GenerationResult, echo: bool) -> TokenLogprobs | None:
    """The choice's logprobs: the completion's tokens, after the prompt's with ``echo``
    (offsets into the choice's text)."""
    scored = result.logprobs
    if scored is None:
        return None
    before = result.prompt_logprobs if echo else None
    if before is None:
        return scored
    shift = len(result.text) - len(result.completion)
    return TokenLogprobs(
        tokens=before.tokens + scored.tokens,
        token_logprobs=before.token_logprobs + scored.token_logprobs,
        top_logprobs=before.top_logprobs + scored.top_logprobs,
        text_offset=before.text_offset + [shift + o for o in scored.text_offset],
    )


def usage(results: list[GenerationResult]) -> Usage:
    # Samples of one prompt share it: count each prompt's tokens once, as OpenAI does.
    prompt_tokens = sum(r.prompt_tokens for r in results if r.sample == 0)
    completion_tokens = sum(r.completion_tokens for r in results)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
