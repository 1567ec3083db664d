"""OpenAI's response objects built from quotegen's results: shared by the HTTP routes and
``quotegen batch``'s OpenAI batch output."""

from __future__ import annotations

from typing import Any, Literal

from quotegen.errors import QuotegenError
from quotegen.openaischemas import CompletionChoice, Usage
from quotegen.schemas import ErrorResponse, GenerationResult, TokenLogprobs


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


#: OpenAI's error classes, by HTTP status (as the openai SDK and vLLM use them).
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(
    code: str, message: str, status: int = 400, param: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``: OpenAI's shape, on every route."""
    kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"message": message, "type": kind, "param": param, "code": code}
    return ErrorResponse.model_validate({"error": body}).model_dump()


def exception_body(exc: QuotegenError) -> dict[str, Any]:
    return error_body(exc.error_type, exc.message, exc.http_status, exc.param)
