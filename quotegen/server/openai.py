"""OpenAI's API as the openai SDK speaks it: ``/v1/completions`` (streamed or not) and
``/v1/models``."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from quotegen.openai.format import CompletionChunks, completion_choices, usage
from quotegen.openai.protocol import (
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
    OpenAIRequest,
)
from quotegen.schemas import ErrorResponse
from quotegen.server.deps import Auth, Service
from quotegen.server.responses import ERRORS, event_stream, openai_events

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
async def completions(body: CompletionRequest, request: Request, service: Service) -> Response:
    """OpenAI's completions API: works with the official `openai` SDK unchanged."""
    served = service.check_model(body.model)
    prompts = body.prompts
    service.check_prompts(prompts, "prompt")
    settings = service.settings(body.requested(), OpenAIRequest.DEFAULTS)
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served}
    if body.stream:
        ticket = service.tickets.submit(prompts, settings, stream=True)
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        chunks = CompletionChunks(head, body.echo)
        return event_stream(openai_events(service.tickets, ticket, chunks, include_usage))
    results = await service.results(service.tickets.submit(prompts, settings), request)
    response = CompletionResponse(
        **head, choices=completion_choices(results, body.echo), usage=usage(results)
    )
    return JSONResponse(response.model_dump())


@router.get("/models", response_model=ModelList, summary="The served model")
async def models(service: Service) -> ModelList:
    """OpenAI's model list: the one model this server serves."""
    return ModelList(data=[ModelCard(id=service.engine.info.name, created=service.created)])
