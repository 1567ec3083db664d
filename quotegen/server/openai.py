"""OpenAI's API as the openai SDK speaks it: ``/v1/completions`` (streamed or not) and
``/v1/models``."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from quotegen.errors import QuotegenError, UnknownModelError
from quotegen.schemas import (
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    ErrorResponse,
    GenerationResult,
    ModelCard,
    ModelList,
    Usage,
)
from quotegen.server.deps import Auth, Ready, State, check_prompts
from quotegen.server.responses import ERRORS, error_body, event_stream, sse
from quotegen.server.tickets import Ticket, Tickets

router = APIRouter(prefix="/v1", dependencies=Auth)

#: OpenAI's own defaults, for what neither the request nor the model's generation config sets
#: (as vLLM does): 16 tokens, temperature 1, no nucleus, no top-k, no penalty, no stop.
OPENAI_DEFAULTS = {
    "max_new_tokens": 16,
    "min_new_tokens": 0,
    "do_sample": True,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "repetition_penalty": 1.0,
    "stop": [],
}


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
    served = tickets.engine.info.name
    if body.model not in (None, "", served, "quotegen"):
        raise UnknownModelError(
            f"The model '{body.model}' is not served here; this server serves '{served}' "
            "(see GET /v1/models)."
        )
    prompts = body.prompts
    check_prompts(prompts, state, "prompt")
    settings = tickets.engine.settings(body.requested(), OPENAI_DEFAULTS)
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served}
    if body.stream:
        ticket = tickets.submit(prompts, settings, stream=True)
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return event_stream(_events(tickets, ticket, head, body.echo, include_usage))
    ticket = tickets.submit(prompts, settings)
    results = await tickets.result(ticket, request.is_disconnected)
    choices = [
        CompletionChoice(
            text=r.text if body.echo else r.completion,
            index=i,
            finish_reason=_finish(r),
        )
        for i, r in enumerate(results)
    ]
    response = CompletionResponse(**head, choices=choices, usage=_usage(results))
    return JSONResponse(response.model_dump())


@router.get("/models", response_model=ModelList, summary="The served model")
async def models(state: State, tickets: Ready) -> ModelList:
    """OpenAI's model list: the one model this server serves."""
    return ModelList(data=[ModelCard(id=tickets.engine.info.name, created=state.created)])


def _finish(result: GenerationResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def _usage(results: list[GenerationResult]) -> Usage:
    # Samples of one prompt share it: count each prompt's tokens once, as OpenAI does.
    prompt_tokens = sum(r.prompt_tokens for r in results if r.sample == 0)
    completion_tokens = sum(r.completion_tokens for r in results)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


async def _events(
    tickets: Tickets, ticket: Ticket, head: dict[str, Any], echo: bool, include_usage: bool
) -> AsyncIterator[str]:
    def chunk(index: int, text: str, finish: str | None) -> str:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        return sse({**head, "object": "text_completion", "choices": [choice]})

    try:
        if echo:
            for i, row in enumerate(ticket.rows):
                yield chunk(i, row.text_prefix, None)
        async for index, text in tickets.stream(ticket):
            yield chunk(index, text, None)
        results = await ticket.done
        for i, result in enumerate(results):
            yield chunk(i, "", _finish(result))
        if include_usage:
            usage = _usage(results).model_dump()
            yield sse({**head, "object": "text_completion", "choices": [], "usage": usage})
        yield sse("[DONE]")
    except QuotegenError as exc:
        yield sse(error_body(exc.error_type, exc.message))
