"""OpenAI's API as the openai SDK speaks it: ``/v1/completions`` (streamed or not) and
``/v1/models``."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

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
    TokenLogprobs,
    Usage,
)
from quotegen.server.deps import Auth, Ready, State, check_prompts
from quotegen.server.responses import ERRORS, event_stream, exception_body, sse
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
    served = check_model(body.model, tickets)
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
            logprobs=completion_logprobs(r, body.echo),
            finish_reason=finish_reason(r),
        )
        for i, r in enumerate(results)
    ]
    response = CompletionResponse(**head, choices=choices, usage=usage(results))
    return JSONResponse(response.model_dump())


@router.get("/models", response_model=ModelList, summary="The served model")
async def models(state: State, tickets: Ready) -> ModelList:
    """OpenAI's model list: the one model this server serves."""
    return ModelList(data=[ModelCard(id=tickets.engine.info.name, created=state.created)])


def check_model(requested: str | None, tickets: Tickets) -> str:
    """The served model's name, if the request names it (or no model): a 404 otherwise."""
    served = tickets.engine.info.name
    if requested not in (None, "", served, "quotegen"):
        raise UnknownModelError(
            f"The model '{requested}' is not served here; this server serves '{served}' "
            "(see GET /v1/models).",
            param="model",
        )
    return served


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
