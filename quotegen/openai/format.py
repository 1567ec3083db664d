"""OpenAI's response objects built from quotegen's results (choices, logprobs in the
completions and chat APIs' shapes, usage, stream chunks): shared by the HTTP routes and
``quotegen batch``'s OpenAI batch output."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from quotegen.errors import QuotegenError
from quotegen.openai.protocol import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatDelta,
    ChatLogprobs,
    ChatTokenLogprob,
    ChatTopLogprob,
    CompletionChoice,
    CompletionResponse,
    Usage,
)
from quotegen.schemas import ErrorResponse, GenerationResult, Schema, TokenLogprobs


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


# -- streamed responses -----------------------------------------------------------------------


class StreamChunks(Protocol):
    """The chunks of one streamed OpenAI response, as schemas: what a choice's prompt adds
    first (or None), each text piece, each choice's last chunk, and the usage chunk."""

    def start(self, index: int, prompt: str) -> Schema | None: ...

    def piece(self, index: int, text: str) -> Schema: ...

    def end(self, index: int, result: GenerationResult) -> Schema: ...

    def usage(self, counts: Usage) -> Schema: ...


class CompletionChunks:
    """A streamed completion: ``text_completion`` objects of one choice each (the prompt
    first with ``echo``); a choice's logprobs come whole with its last chunk."""

    def __init__(self, head: dict[str, Any], echo: bool) -> None:
        self.head, self.echo = head, echo

    def _chunk(self, index: int, text: str, finish: Any = None, logprobs: Any = None) -> Schema:
        choice = CompletionChoice(text=text, index=index, logprobs=logprobs, finish_reason=finish)
        return CompletionResponse(**self.head, choices=[choice])

    def start(self, index: int, prompt: str) -> Schema | None:
        return self._chunk(index, prompt) if self.echo else None

    def piece(self, index: int, text: str) -> Schema:
        return self._chunk(index, text)

    def end(self, index: int, result: GenerationResult) -> Schema:
        scored = completion_logprobs(result, self.echo)
        return self._chunk(index, "", finish_reason(result), scored)

    def usage(self, counts: Usage) -> Schema:
        return CompletionResponse(**self.head, choices=[], usage=counts)


class ChatChunks:
    """A streamed chat completion: ``chat.completion.chunk`` objects; each choice opens with
    the assistant's role (and, for a base model's quote, the user's words)."""

    def __init__(self, head: dict[str, Any], echo: bool, top: int) -> None:
        self.head, self.echo, self.top = head, echo, top

    def _chunk(
        self, index: int, delta: ChatDelta, finish: Any = None, scored: Any = None
    ) -> Schema:
        choice = ChatChunkChoice(index=index, delta=delta, logprobs=scored, finish_reason=finish)
        return ChatCompletionChunk(**self.head, choices=[choice])

    def start(self, index: int, prompt: str) -> Schema | None:
        return self._chunk(index, ChatDelta(role="assistant", content=prompt if self.echo else ""))

    def piece(self, index: int, text: str) -> Schema:
        return self._chunk(index, ChatDelta(content=text))

    def end(self, index: int, result: GenerationResult) -> Schema:
        scored = chat_logprobs(result.logprobs, self.top)
        return self._chunk(index, ChatDelta(), finish_reason(result), scored)

    def usage(self, counts: Usage) -> Schema:
        return ChatCompletionChunk(**self.head, choices=[], usage=counts)


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


def chat_logprobs(scored: TokenLogprobs | None, top: int) -> ChatLogprobs | None:
    """Completion logprobs in the chat API's shape: one entry per token, with bytes."""
    if scored is None:
        return None
    content = []
    for token, logprob, alternatives in zip(
        scored.tokens, scored.token_logprobs, scored.top_logprobs, strict=True
    ):
        likeliest = sorted((alternatives or {}).items(), key=lambda kv: -kv[1])[:top]
        content.append(
            ChatTokenLogprob(
                token=token,
                logprob=logprob if logprob is not None else 0.0,
                bytes=list(token.encode("utf-8")),
                top_logprobs=[
                    ChatTopLogprob(token=t, logprob=v, bytes=list(t.encode("utf-8")))
                    for t, v in likeliest
                ],
            )
        )
    return ChatLogprobs(content=content)
