"""OpenAI's API as the openai SDK speaks it: ``/v1/completions`` (streamed or not) and
``/v1/models``."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from quotegen.errors import QuotegenError
from quotegen.openaiformat import (
    completion_choices,
    completion_logprobs,
    exception_body,
    finish_reason,
    usage,
)
from quotegen.openaischemas import (
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
    OpenAIRequest,
)
from quotegen.schemas import ErrorResponse
from quotegen.server.deps import Auth, Ready, State, check_model, check_prompts
from quotegen.server.responses import ERRORS, event_stream, sse
from quotegen.server.tickets import Ticket, Tickets

router = APIRouter(prefix="/v1", dependencies=Auth)


@router.post(
    "/completions",
    response_model=CompletionResponse,
    responses={
        **ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE if stream"},
        404: {"model": ErrorResponse, "description": "Unknown model"},
    },
    summary="OpenAI-compatible completions (stream as server-sent events)",
)
async def completions(
    body: CompletionRequest, request: Request, state: State, tickets: Ready
) -> Response:
    """OpenAI's completions API: works with the official `openai` SDK unchanged."""
    served = check_model(body.model, tickets)
    prompts = body.prompts
    check_prompts(prompts, state, "prompt")
    settings = tickets.engine.settings(body.requested(), OpenAIRequest.DEFAULTS)
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served}
    if body.stream:
        ticket = tickets.submit(prompts, settings, stream=True)
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return event_stream(_events(tickets, ticket, head, body.echo, include_usage))
    ticket = tickets.submit(prompts, settings)
    results = await tickets.result(ticket, request.is_disconnected)
    response = CompletionResponse(
        **head, choices=completion_choices(results, body.echo), usage=usage(results)
    )
    return JSONResponse(response.model_dump())


@router.get("/models", response_model=ModelList, summary="The served model")
async def models(state: State, tickets: Ready) -> ModelList:
    """OpenAI's model list: the one model this server serves."""
    return ModelList(data=[ModelCard(id=tickets.engine.info.name, created=state.created)])


async def _events(
    tickets: Tickets, ticket: Ticket, head: dict[str, Any], echo: bool, include_usage: bool
) -> AsyncIterator[str]:
    def chunk(index: int, text: str, finish: str | None, logprobs: Any = None) -> str:
        choice = {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}
        return sse({**head, "object": "text_completion", "choices": [choice]})

    try:
        if echo:
            for i, row in enumerate(ticket.rows):
                yield chunk(i, row.text_prefix, None)
        async for index, text in tickets.stream(ticket):
            yield chunk(index, text, None)
        results = await ticket.done
        for i, result in enumerate(results):
            # A choice's logprobs come whole with its last chunk (offsets into its text).
            yield chunk(i, "", finish_reason(result), completion_logprobs(result, echo))
        if include_usage:
            counts = usage(results).model_dump()
            yield sse({**head, "object": "text_completion", "choices": [], "usage": counts})
        yield sse("[DONE]")
    except QuotegenError as exc:
        yield sse(exception_body(exc))
