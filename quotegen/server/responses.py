"""What every router answers with: error bodies and their handlers, documented error
responses, server-sent events (FastAPI's framing) and the one OpenAI stream."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from quotegen.errors import QuotegenError
from quotegen.openai.format import StreamChunks, error_body, exception_body, usage
from quotegen.schemas import ErrorResponse
from quotegen.server.tickets import Ticket, Tickets

log = logging.getLogger("quotegen.server")

#: The error answers documented on every generation route.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed body (not JSON, not UTF-8)"},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    413: {"model": ErrorResponse, "description": "Request body over the size limit"},
    422: {"description": "Invalid request: the message names the field and the allowed range"},
    503: {"model": ErrorResponse, "description": "Model loading, or queue full (Retry-After)"},
    504: {"model": ErrorResponse, "description": "The request took longer than --timeout"},
}


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event (FastAPI's framing): JSON data, or text sent as it is (a
    serialized schema, or ``[DONE]``)."""
    payload = data if isinstance(data, str) else json.dumps(jsonable_encoder(data))
    return format_sse_event(data_str=payload, event=event)


def event_stream(events: AsyncIterator[bytes]) -> EventSourceResponse:
    return EventSourceResponse(
        events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def openai_events(
    tickets: Tickets, ticket: Ticket, chunks: StreamChunks, include_usage: bool
) -> AsyncIterator[bytes]:
    """A streamed OpenAI response (completions or chat): each choice's opening chunk, the
    text pieces as they come, each choice's last chunk, usage if asked, then ``[DONE]``; an
    error mid-stream is its own event."""

    def chunk(schema: BaseModel) -> bytes:
        # OpenAI's chunks carry "usage" only on the usage chunk, the one that sets it.
        unset = None if "usage" in schema.model_fields_set else {"usage"}
        return sse(schema.model_dump_json(exclude=unset))

    try:
        for index, row in enumerate(ticket.rows):
            opening = chunks.start(index, row.text_prefix)
            if opening is not None:
                yield chunk(opening)
        async for index, text in tickets.stream(ticket):
            yield chunk(chunks.piece(index, text))
        results = await ticket.done
        for index, result in enumerate(results):
            yield chunk(chunks.end(index, result))
        if include_usage:
            yield chunk(chunks.usage(usage(results)))
        yield sse("[DONE]")
    except QuotegenError as exc:
        yield sse(exception_body(exc))


def _json_safe(value: Any) -> Any:
    """Echoed inputs made safe to send back: no NaN/Infinity (invalid JSON), no huge strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "…"
    if isinstance(value, list):
        return [_json_safe(v) for v in value[:20]]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _where(error: Any) -> str:
    return ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))


def _validation_message(errors: list[Any]) -> str:
    parts = [f"{_where(error) or 'request'}: {error.get('msg', 'invalid')}" for error in errors[:5]]
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes a JSON body with a one-sentence message; never a traceback."""

    async def quotegen_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, QuotegenError)
        headers = {}
        if exc.http_status in (429, 503):
            headers["Retry-After"] = "1"
        if exc.http_status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if exc.http_status == 503 and exc.error_type == "overloaded":
            request.app.state.quotegen.metrics.rejected.inc()
        return JSONResponse(exception_body(exc), status_code=exc.http_status, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, (RequestValidationError, ValidationError)) else []
        # "detail" is what FastAPI always sent (the seeds' clients may read it); "error" says
        # the same in one sentence.
        message = _validation_message(list(errors))
        param = _where(errors[0]) or None if errors else None
        body = {
            "detail": _json_safe(jsonable_encoder(errors, custom_encoder={ValueError: str})),
            **error_body("invalid_request", message, 422, param),
        }
        return JSONResponse(body, status_code=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            {"detail": exc.detail, **error_body("http_error", str(exc.detail), exc.status_code)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception("Unexpected error on %s", request.url.path)
        return JSONResponse(
            error_body("internal_error", "Internal error; the server log has the details.", 500),
            status_code=500,
        )

    app.add_exception_handler(QuotegenError, quotegen_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
