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
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from quotegen.engine.generation import TextEngine
from quotegen.errors import InvalidRequestError
from quotegen.openai.format import ChatChunks, chat_logprobs, finish_reason, usage
from quotegen.openai.protocol import (
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatReply,
    OpenAIRequest,
)
from quotegen.schemas import ErrorResponse
from quotegen.server.deps import Auth, Service
from quotegen.server.responses import ERRORS, event_stream, openai_events

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
    body: ChatCompletionRequest, request: Request, service: Service
) -> Response:
    """OpenAI's chat completions API: works with the official `openai` SDK unchanged. A base
    model without a chat template continues the last message as a quote and replies with
    the whole quote."""
    served = service.check_model(body.model)
    prompt = chat_prompt(service.engine, body)
    service.check_prompts([prompt.text], "messages")
    given = body.requested()
    if not prompt.echo:  # a rendered template ends in its own markup, not in a user's word
        given.setdefault("whole_words", False)
    settings = service.settings(given, OpenAIRequest.DEFAULTS)
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served}
    top = body.top_logprobs or 0
    if body.stream:
        ticket = service.tickets.submit([prompt.text], settings, stream=True, chat=not prompt.echo)
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        chunks = ChatChunks(head, prompt.echo, top)
        return event_stream(openai_events(service.tickets, ticket, chunks, include_usage))
    ticket = service.tickets.submit([prompt.text], settings, chat=not prompt.echo)
    results = await service.results(ticket, request)
    choices = [
        ChatChoice(
            index=i,
            message=ChatReply(content=r.text if prompt.echo else r.completion),
            logprobs=chat_logprobs(r.logprobs, top),
            finish_reason=finish_reason(r),
        )
        for i, r in enumerate(results)
    ]
    response = ChatCompletionResponse(**head, choices=choices, usage=usage(results))
    return JSONResponse(response.model_dump())
