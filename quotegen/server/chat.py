"""OpenAI's chat completions, ``POST /v1/chat/completions``, as the openai SDK speaks it.

A model with a chat template gets the messages rendered by it (``apply_chat_template``) and
answers as its assistant. A base quote model has no notion of turns, so it does the one thing
it is good at: the last message (the user's words) is the start of a quote, and the reply is
the whole quote, those words included ("life is" -> "life is a journey, not a race.").
System messages and earlier turns do not reach such a model.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from quotegen.errors import InvalidRequestError, QuotegenError
from quotegen.generation import TextEngine
from quotegen.openaiformat import exception_body, finish_reason, usage
from quotegen.openaischemas import (
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatLogprobs,
    ChatReply,
    ChatTokenLogprob,
    ChatTopLogprob,
    OpenAIRequest,
)
from quotegen.schemas import ErrorResponse, GenerationResult, TokenLogprobs
from quotegen.server.deps import Auth, Ready, State, check_model, check_prompts
from quotegen.server.responses import ERRORS, event_stream, sse
from quotegen.server.tickets import Ticket, Tickets

router = APIRouter(prefix="/v1", dependencies=Auth)


@dataclass(frozen=True)
class ChatPrompt:
    """What a conversation becomes for the model: the prompt, and whether the reply repeats
    it (a base model's quote starts with the user's words)."""

    text: str
    echo: bool


def chat_prompt(engine: TextEngine, body: ChatCompletionRequest) -> ChatPrompt:
    messages = [{"role": m.role, "content": m.text} for m in body.messages]
    rendered = engine.render_chat(messages)
    if rendered is not None:
        return ChatPrompt(rendered, echo=False)
    last = body.messages[-1]
    if last.role not in ("user", "assistant"):
        raise InvalidRequestError(
            f"messages: the last message is from '{last.role}'; this model continues the last "
            "user (or assistant) message as a quote, so end with one.",
            param="messages",
        )
    return ChatPrompt(last.text, echo=True)


@router.post(
    "/chat/completions",
    response_model=ChatCompletionResponse,
    responses={
        **ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE if stream"},
        404: {"model": ErrorResponse, "description": "Unknown model"},
    },
    summary="OpenAI-compatible chat completions (stream as server-sent events)",
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, state: State, tickets: Ready
) -> Response:
    """OpenAI's chat completions API: works with the official `openai` SDK unchanged. A base
    model without a chat template continues the last message as a quote and replies with
    the whole quote."""
    served = check_model(body.model, tickets)
    prompt = chat_prompt(tickets.engine, body)
    check_prompts([prompt.text], state, "messages")
    given = body.requested()
    if not prompt.echo:  # a rendered template ends in its own markup, not in a user's word
        given.setdefault("whole_words", False)
    settings = tickets.engine.settings(given, OpenAIRequest.DEFAULTS)
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served}
    top = body.top_logprobs or 0
    if body.stream:
        ticket = tickets.submit([prompt.text], settings, stream=True)
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return event_stream(_events(tickets, ticket, head, prompt.echo, top, include_usage))
    ticket = tickets.submit([prompt.text], settings)
    results = await tickets.result(ticket, request.is_disconnected)
    choices = [
        ChatChoice(
            index=i,
            message=ChatReply(content=_content(r, prompt.echo)),
            logprobs=chat_logprobs(r.logprobs, top),
            finish_reason=finish_reason(r),
        )
        for i, r in enumerate(results)
    ]
    response = ChatCompletionResponse(**head, choices=choices, usage=usage(results))
    return JSONResponse(response.model_dump())


def _content(result: GenerationResult, echo: bool) -> str:
    return result.text if echo else result.completion


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


async def _events(
    tickets: Tickets,
    ticket: Ticket,
    head: dict[str, Any],
    echo: bool,
    top: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(index: int, delta: dict[str, str], finish: str | None, logprobs: Any = None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return sse({**head, "object": "chat.completion.chunk", "choices": [choice]})

    try:
        for i, row in enumerate(ticket.rows):
            yield chunk(i, {"role": "assistant", "content": row.text_prefix if echo else ""}, None)
        async for index, text in tickets.stream(ticket):
            yield chunk(index, {"content": text}, None)
        results = await ticket.done
        for i, result in enumerate(results):
            # A choice's logprobs come whole with its last chunk.
            scored = chat_logprobs(result.logprobs, top)
            yield chunk(i, {}, finish_reason(result), scored.model_dump() if scored else None)
        if include_usage:
            counts = usage(results).model_dump()
            yield sse({**head, "object": "chat.completion.chunk", "choices": [], "usage": counts})
        yield sse("[DONE]")
    except QuotegenError as exc:
        yield sse(exception_body(exc))
