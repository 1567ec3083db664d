"""The native API: many prompts with full settings, results in the ``generate --json`` schema,
and one prompt streamed as server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.sse import EventSourceResponse

from quotegen.errors import QuotegenError
from quotegen.openai.format import exception_body
from quotegen.schemas import GenerateRequest, GenerateResponse, StreamRequest
from quotegen.server.deps import Auth, GenerationService, Service
from quotegen.server.responses import ERRORS, event_stream, sse
from quotegen.server.tickets import Ticket, Tickets
from quotegen.settings import GenerationSettings

router = APIRouter(prefix="/v1", dependencies=Auth)


@router.post(
    "/generate",
    response_model=GenerateResponse,
    responses=ERRORS,
    summary="Native: many prompts, full settings",
)
async def generate_native(
    body: GenerateRequest, request: Request, service: Service
) -> GenerateResponse:
    """Results in the same schema as `quotegen generate --json`."""
    service.check_prompts(body.prompts, "prompts")
    settings = _settings(service, body.settings)
    ticket = service.tickets.submit(body.prompts, settings, start_index=body.start_index)
    return GenerateResponse(results=await service.results(ticket, request))


@router.post(
    "/generate/stream",
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
    summary="Native streaming: `prompt`, `token` events, then one `result` event",
)
async def generate_stream(body: StreamRequest, service: Service) -> EventSourceResponse:
    """Server-sent events: `event: prompt` with `{"prompt": …}` (the prompt as used), then
    `event: token` with `{"text": …}` pieces, then `event: result`
    with the full result (the `generate --json` schema); `event: error` if it fails.
    """
    service.check_prompts([body.prompt], "prompt")
    settings = _settings(service, body.settings).model_copy(update={"n": 1, "best_of": 1})
    ticket = service.tickets.submit([body.prompt], settings, stream=True)
    return event_stream(_events(service.tickets, ticket))


def _settings(service: GenerationService, requested: GenerationSettings) -> GenerationSettings:
    """What the request set, over the model's defaults: unset fields are the model's."""
    return service.settings(requested.model_dump(include=requested.model_fields_set))


async def _events(tickets: Tickets, ticket: Ticket) -> AsyncIterator[bytes]:
    # The prompt as used (a default one when it was empty), before its continuation.
    yield sse({"prompt": ticket.rows[0].text_prefix}, event="prompt")
    try:
        async for _, text in tickets.stream(ticket):
            yield sse({"text": text}, event="token")
        (result,) = await ticket.done
        yield sse(result.model_dump(), event="result")
    except QuotegenError as exc:
        yield sse(exception_body(exc), event="error")
