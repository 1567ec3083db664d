"""The HTTP server: an app factory, the seeds' routes byte-compatible, and a modern API.

``create_app`` builds a FastAPI app around a ``Generator`` (given, or loaded in the background
by the lifespan so ``/health`` answers 503 while the model loads). Every generation route goes
through one ``BatchEngine``. Nothing is built at import time.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quotegen import __version__
from quotegen.batching import BatchEngine, EngineLimits, Ticket
from quotegen.errors import (
    InvalidRequestError,
    NotReadyError,
    QuotegenError,
    UnauthorizedError,
    UnknownModelError,
)
from quotegen.generation import Generator, choose_prompt
from quotegen.schemas import (
    MAX_NEW_TOKENS,
    MAX_PROMPTS,
    MAX_SAMPLES,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    GenerationResult,
    GenerationSettings,
    Health,
    Info,
    Limits,
    ModelCard,
    ModelList,
    Seed1Request,
    Seed1Response,
    Seed2Message,
    Seed2Query,
    StreamRequest,
    Usage,
)

log = logging.getLogger("quotegen.server")
access_log = logging.getLogger("quotegen.access")

SEED1_TITLE = "How to Serve AI Models with FastAPI and Docker"
SEED2_MESSAGE = "This is Quote Generation API test"


@dataclass
class ServerConfig:
    """What ``quotegen serve`` passes to the app; every field has a safe default."""

    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    limits: EngineLimits = field(default_factory=EngineLimits)
    max_body_bytes: int = 1_048_576
    max_prompt_bytes: int = 16_384
    drain_timeout_s: float = 30.0


class Metrics:
    """Prometheus metrics in a registry of the app's own (apps never share counters)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "quotegen_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "quotegen_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.tokens = Counter(
            "quotegen_generated_tokens", "Tokens generated", registry=self.registry
        )
        self.queue_depth = Gauge(
            "quotegen_queue_depth", "Rows waiting for a batch", registry=self.registry
        )
        self.running_rows = Gauge(
            "quotegen_running_rows", "Rows in the running batch", registry=self.registry
        )
        self.batch_size = Histogram(
            "quotegen_batch_size",
            "Rows that started together (a new batch, or rows joining the running one)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.rejected = Counter(
            "quotegen_rejected",
            "Requests refused because the queue was full",
            registry=self.registry,
        )


class ServerState:
    """The app's model, engine and status, shared with routes through a dependency."""

    def __init__(
        self,
        config: ServerConfig,
        generator: Generator | None,
        loader: Callable[[], Generator] | None,
        on_load_failed: Callable[[QuotegenError], None] | None,
    ) -> None:
        self.config = config
        self.metrics = Metrics()
        self.generator = generator
        self.loader = loader
        self.on_load_failed = on_load_failed
        self.engine: BatchEngine | None = None
        self.status: str = "loading"
        self.detail: str | None = None
        self.created = int(time.time())

    def start(self) -> None:
        if self.generator is not None:
            self._ready(self.generator)
        else:
            threading.Thread(target=self._load, name="quotegen-loader", daemon=True).start()

    def _load(self) -> None:
        assert self.loader is not None
        try:
            generator = self.loader()
        except QuotegenError as exc:
            self.status, self.detail = "failed", exc.message
            log.error("Error: %s", exc.message)
            if self.on_load_failed is not None:
                self.on_load_failed(exc)
            return
        except Exception as exc:  # surfaced in /health and the log; the server stays up
            self.status, self.detail = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("Could not load the model")
            if self.on_load_failed is not None:
                self.on_load_failed(QuotegenError(self.detail))
            return
        self._ready(generator)

    def _ready(self, generator: Generator) -> None:
        metrics = self.metrics
        self.generator = generator
        self.engine = BatchEngine(
            generator,
            self.config.limits,
            on_batch=metrics.batch_size.observe,
            on_tokens=metrics.tokens.inc,
            on_queue=metrics.queue_depth.set,
            on_running=metrics.running_rows.set,
        )
        self.engine.start()
        self.status = "ok"
        log.info("Model %s ready on %s", generator.model_name, generator.loaded.device)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop(self.config.drain_timeout_s)


# -- dependencies ------------------------------------------------------------------------------


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.quotegen
    return state


def get_engine(state: Annotated[ServerState, Depends(get_state)]) -> BatchEngine:
    if state.engine is None:
        if state.status == "failed":
            raise NotReadyError(f"The model failed to load: {state.detail}")
        raise NotReadyError("The model is still loading; retry in a few seconds.")
    return state.engine


def require_api_key(request: Request, state: Annotated[ServerState, Depends(get_state)]) -> None:
    key = state.config.api_key
    if not key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    # compare_digest: the time taken does not reveal how much of the key matched.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode("utf-8", "replace"), key.encode("utf-8")
    ):
        raise UnauthorizedError(
            "Missing or wrong API key: send the header 'Authorization: Bearer <key>'."
        )


Engine = Annotated[BatchEngine, Depends(get_engine)]
Auth = [Depends(require_api_key)]


# -- helpers -----------------------------------------------------------------------------------


def _check_prompts(prompts: list[str], state: ServerState, field_name: str) -> None:
    limit = state.config.max_prompt_bytes
    for i, prompt in enumerate(prompts):
        size = len(prompt.encode("utf-8", "surrogatepass"))
        if size > limit:
            where = field_name if len(prompts) == 1 else f"{field_name}[{i}]"
            raise InvalidRequestError(f"{where}: the prompt is {size} bytes; the limit is {limit}.")
        if "\x00" in prompt:
            raise InvalidRequestError(f"{field_name}: NUL characters are not allowed in prompts.")


def _seed_route_prompt(prompt: str, seed: int | None) -> str:
    """Seed routes count tokens of the prompt actually used, so pick the default one first."""
    return choose_prompt(prompt, random.Random(seed))


def _seed_settings(
    prompt_tokens: int,
    *,
    max_length: int,
    top_k: int,
    top_p: float,
    clean: bool,
    min_length: int = 0,
) -> GenerationSettings:
    """The seeds' pipeline settings: lengths count the prompt, sampling at temperature 1,
    no repetition penalty, no stop strings (the pipelines ran to end-of-text or the limit)."""
    max_new = max(1, max_length - prompt_tokens)
    return GenerationSettings(
        max_new_tokens=max_new,
        min_new_tokens=min(max(0, min_length - prompt_tokens), max_new),
        do_sample=True,
        temperature=1.0,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=1.0,
        stop=[],
        clean=clean,
    )


def _sse(data: Any, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(jsonable_encoder(data))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return ErrorResponse.model_validate(
        {"error": {"type": error_type, "message": message}}
    ).model_dump()


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


def _validation_message(errors: list[Any]) -> str:
    parts = []
    for error in errors[:5]:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


async def _run(
    engine: BatchEngine, request: Request, prompts: list[str], settings: GenerationSettings
) -> list[GenerationResult]:
    ticket = engine.submit(prompts, settings)
    return await engine.result(ticket, request.is_disconnected)


# -- the HTML page -----------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>quotegen</title>
<style>
 body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}
 h1{font-size:1.5rem} form{display:flex;gap:.5rem;flex-wrap:wrap}
 input{padding:.5rem;font-size:1rem} #prompt{flex:1 1 16rem}
 button{padding:.5rem 1rem;font-size:1rem;cursor:pointer}
 blockquote{font-size:1.3rem;font-style:italic;border-left:4px solid #888;margin:1.5rem 0;
  padding:.5rem 1rem;min-height:1.5em} .error{color:#b00020} small{color:#666}
</style></head>
<body>
<h1>How to Serve AI Models with FastAPI and Docker</h1>
<p>This is Quote Generation API test. Type the start of a quote, or leave it empty for a
surprise.</p>
<form id="form">
 <input id="prompt" name="prompt" placeholder="life is" autocomplete="off">
 <input id="key" name="key" type="password" placeholder="API key (if set)" autocomplete="off">
 <button type="submit">Generate</button>
</form>
<blockquote id="quote" aria-live="polite"></blockquote>
<small>API: <a href="/docs">/docs</a> &middot; model: <span id="model">__MODEL__</span></small>
<script>
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const out = document.getElementById("quote");
  const prompt = document.getElementById("prompt").value;
  const key = document.getElementById("key").value;
  out.className = ""; out.textContent = "\u2026";
  const headers = key ? {"Authorization": "Bearer " + key} : {};
  try {
    const response = await fetch("/generate_quote?prompt=" + encodeURIComponent(prompt),
                                 {method: "POST", headers});
    const body = await response.json();
    if (!response.ok) { throw new Error(body.error ? body.error.message : response.statusText); }
    out.textContent = body;
  } catch (error) { out.className = "error"; out.textContent = error.message; }
});
</script>
</body></html>
"""


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


# -- middleware --------------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Body size limit, one access-log line per request, and request metrics."""

    def __init__(self, app: ASGIApp, state: ServerState, routes: set[str]) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.state.config.max_body_bytes
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        path = scope.get("path", "")
        route = path if path in self.routes else "other"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
            await send(message)

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                raise _BodyTooLarge
            await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLarge:
            if not status["sent"]:
                response = JSONResponse(
                    _error_body(
                        "request_too_large", f"The request body exceeds the limit of {limit} bytes."
                    ),
                    status_code=413,
                )
                await response(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            metrics = self.state.metrics
            metrics.requests.labels(route=route, status=str(status["code"])).inc()
            metrics.latency.labels(route=route).observe(elapsed)
            client = scope.get("client") or ("-", 0)
            access_log.info(
                '%s:%s "%s %s" %s %.1f ms',
                client[0],
                client[1],
                scope.get("method", "-"),
                path,
                status["code"],
                elapsed * 1000,
            )


# -- the app factory ---------------------------------------------------------------------------


def create_app(
    generator: Generator | None = None,
    *,
    loader: Callable[[], Generator] | None = None,
    config: ServerConfig | None = None,
    on_load_failed: Callable[[QuotegenError], None] | None = None,
) -> FastAPI:
    """Build the app around a ready ``generator``, or a ``loader`` run in the background."""
    if generator is None and loader is None:
        raise ValueError("create_app needs a generator or a loader")
    config = config or ServerConfig()
    state = ServerState(config, generator, loader, on_load_failed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start()
        yield
        await asyncio.to_thread(state.stop)

    app = FastAPI(
        title="quotegen",
        version=__version__,
        description=(
            "Short texts (quotes, one-liners) from a Hugging Face causal language model. "
            "Seed routes `/generate` and `/generate_quote` keep the tutorials' exact schemas; "
            "`/v1/completions` speaks OpenAI's completions API; `/v1/generate` is the native API."
        ),
        lifespan=lifespan,
    )
    app.state.quotegen = state
    _install_error_handlers(app)
    _add_routes(app)
    routes = {getattr(r, "path", "") for r in app.routes}
    app.add_middleware(EdgeMiddleware, state=state, routes=routes)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def quotegen_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, QuotegenError)
        headers = {}
        if exc.http_status in (429, 503):
            headers["Retry-After"] = "1"
        if exc.http_status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if exc.http_status == 503 and exc.error_type == "overloaded":
            request.app.state.quotegen.metrics.rejected.inc()
        return JSONResponse(
            _error_body(exc.error_type, exc.message), status_code=exc.http_status, headers=headers
        )

    async def validation_error(request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, (RequestValidationError, ValidationError)) else []
        # "detail" is what FastAPI always sent (the seeds' clients may read it); "error" says
        # the same in one sentence.
        body = {
            "detail": _json_safe(jsonable_encoder(errors, custom_encoder={ValueError: str})),
            **_error_body("invalid_request", _validation_message(list(errors))),
        }
        return JSONResponse(body, status_code=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            {"detail": exc.detail, **_error_body("http_error", str(exc.detail))},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception("Unexpected error on %s", request.url.path)
        return JSONResponse(
            _error_body("internal_error", "Internal error; the server log has the details."),
            status_code=500,
        )

    app.add_exception_handler(QuotegenError, quotegen_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed body (not JSON, not UTF-8)"},
    401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
    413: {"model": ErrorResponse, "description": "Request body over the size limit"},
    422: {"description": "Invalid request: the message names the field and the allowed range"},
    503: {"model": ErrorResponse, "description": "Model loading, or queue full (Retry-After)"},
    504: {"model": ErrorResponse, "description": "The request took longer than --timeout"},
}


def _add_routes(app: FastAPI) -> None:
    @app.get(
        "/",
        response_class=HTMLResponse,
        summary="Greeting page with a quote form",
        responses={200: {"content": {"application/json": {"example": {"message": SEED2_MESSAGE}}}}},
    )
    async def index(
        request: Request, state: Annotated[ServerState, Depends(get_state)]
    ) -> Response:
        """Seed 1's HTML greeting plus a form; `Accept: application/json` gets seed 2's message."""
        if _wants_json(request):
            return JSONResponse(Seed2Message(message=SEED2_MESSAGE).model_dump())
        name = state.generator.model_name if state.generator is not None else "loading…"
        return HTMLResponse(PAGE.replace("__MODEL__", html.escape(name)))

    @app.post(
        "/generate",
        response_model=Seed1Response,
        dependencies=Auth,
        responses=_ERRORS,
        summary="Seed 1: continue a text (prompt included in the result)",
    )
    async def generate_seed1(body: Seed1Request, request: Request, engine: Engine) -> Seed1Response:
        """Seed 1's route: `max_length` 35 tokens including the prompt, sampling with top-k 50.

        Optional fields (`seed`, `temperature`, `max_new_tokens`, …) override those defaults.
        """
        state = get_state(request)
        _check_prompts([body.text], state, "text")
        prompt = _seed_route_prompt(body.text, body.seed)
        used = engine.generator.count_tokens(prompt)
        base = _seed_settings(used, max_length=35, top_k=50, top_p=1.0, clean=False)
        (result,) = await _run(engine, request, [prompt], body.apply(base))
        return Seed1Response(generated_text=result.text)

    @app.post(
        "/generate_quote",
        response_model=str,
        dependencies=Auth,
        responses=_ERRORS,
        summary="Seed 2: generate a quote (a bare JSON string, prompt included)",
    )
    async def generate_quote(
        query: Annotated[Seed2Query, Query()], request: Request, engine: Engine
    ) -> JSONResponse:
        """Seed 2's route: `min_length` 3 and `max_length` 25 tokens including the prompt,
        `top_p` 0.9, `top_k` 0, `temperature` 1.0, cleaned. An empty prompt picks a default.
        """
        state = get_state(request)
        _check_prompts([query.prompt], state, "prompt")
        prompt = _seed_route_prompt(query.prompt, query.seed)
        log.info("Prompt selected: %s", prompt)
        used = engine.generator.count_tokens(prompt)
        base = _seed_settings(used, max_length=25, min_length=3, top_k=0, top_p=0.9, clean=True)
        (result,) = await _run(engine, request, [prompt], query.apply(base))
        log.info("Quote generated")
        return JSONResponse(result.text)

    @app.post(
        "/v1/completions",
        response_model=CompletionResponse,
        dependencies=Auth,
        responses={
            **_ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE if stream"},
            404: {"model": ErrorResponse, "description": "Unknown model"},
        },
        summary="OpenAI-compatible completions (stream as server-sent events)",
    )
    async def completions(body: CompletionRequest, request: Request, engine: Engine) -> Response:
        """OpenAI's completions API: works with the official `openai` SDK unchanged."""
        state = get_state(request)
        served = engine.generator.model_name
        if body.model not in (None, "", served, "quotegen"):
            raise UnknownModelError(
                f"The model '{body.model}' is not served here; this server serves '{served}' "
                "(see GET /v1/models)."
            )
        prompts = body.prompts
        _check_prompts(prompts, state, "prompt")
        settings = body.settings()
        completion_id = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if body.stream:
            ticket = engine.submit(prompts, settings, stream=True)
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(
                _completion_events(
                    engine, ticket, completion_id, created, served, body.echo, include_usage
                ),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        results = await _run(engine, request, prompts, settings)
        choices = [
            CompletionChoice(
                text=(r.prompt + r.completion) if body.echo else r.completion,
                index=i,
                finish_reason="length" if r.finish_reason == "length" else "stop",
            )
            for i, r in enumerate(results)
        ]
        return JSONResponse(
            CompletionResponse(
                id=completion_id,
                created=created,
                model=served,
                choices=choices,
                usage=_usage(results),
            ).model_dump()
        )

    @app.get("/v1/models", response_model=ModelList, dependencies=Auth, summary="The served model")
    async def models(request: Request, engine: Engine) -> ModelList:
        """OpenAI's model list: the one model this server serves."""
        return ModelList(
            data=[ModelCard(id=engine.generator.model_name, created=get_state(request).created)]
        )

    @app.post(
        "/v1/generate",
        response_model=GenerateResponse,
        dependencies=Auth,
        responses=_ERRORS,
        summary="Native: many prompts, full settings",
    )
    async def generate_native(
        body: GenerateRequest, request: Request, engine: Engine
    ) -> GenerateResponse:
        """Results in the same schema as `quotegen generate --json`."""
        _check_prompts(body.prompts, get_state(request), "prompts")
        return GenerateResponse(results=await _run(engine, request, body.prompts, body.settings))

    @app.post(
        "/v1/generate/stream",
        dependencies=Auth,
        responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}},
        summary="Native streaming: `token` events, then one `result` event",
    )
    async def generate_stream(
        body: StreamRequest, request: Request, engine: Engine
    ) -> StreamingResponse:
        """Server-sent events: `event: token` with `{"text": …}` pieces, then `event: result`
        with the full result (the `generate --json` schema); `event: error` if it fails.
        """
        _check_prompts([body.prompt], get_state(request), "prompt")
        settings = body.settings.model_copy(update={"n": 1})
        ticket = engine.submit([body.prompt], settings, stream=True)
        return StreamingResponse(
            _native_events(engine, ticket),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "Loading or failed"}},
        summary="Readiness: 200 when the model is loaded, 503 before",
    )
    async def health(state: Annotated[ServerState, Depends(get_state)]) -> JSONResponse:
        body = Health(status=state.status, detail=state.detail)
        return JSONResponse(body.model_dump(), status_code=200 if state.status == "ok" else 503)

    @app.get("/info", response_model=Info, dependencies=Auth, summary="Model, device and limits")
    async def info(request: Request, engine: Engine) -> Info:
        state = get_state(request)
        loaded = engine.generator.loaded
        limits = state.config.limits
        return Info(
            model=loaded.name,
            revision=loaded.commit or loaded.ref.revision,
            device=str(loaded.device),
            dtype=str(loaded.dtype).removeprefix("torch."),
            quantize=loaded.quantize,
            version=__version__,
            limits=Limits(
                max_batch_size=limits.max_batch_size,
                max_wait_ms=limits.max_wait_ms,
                max_queue=limits.max_queue,
                request_timeout_s=limits.request_timeout_s,
                max_body_bytes=state.config.max_body_bytes,
                max_prompt_bytes=state.config.max_prompt_bytes,
                max_prompts=MAX_PROMPTS,
                max_new_tokens=MAX_NEW_TOKENS,
                max_samples=MAX_SAMPLES,
                context_length=loaded.context_length,
            ),
        )

    @app.get(
        "/metrics",
        dependencies=Auth,
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
        summary="Prometheus metrics",
    )
    async def metrics(state: Annotated[ServerState, Depends(get_state)]) -> Response:
        if state.engine is not None:
            state.metrics.queue_depth.set(state.engine.queue_depth)
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _usage(results: list[GenerationResult]) -> Usage:
    # Samples of one prompt share it: count each prompt's tokens once, as OpenAI does.
    prompt_tokens = sum(r.prompt_tokens for r in results if r.sample == 0)
    completion_tokens = sum(r.completion_tokens for r in results)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


async def _completion_events(
    engine: BatchEngine,
    ticket: Ticket,
    completion_id: str,
    created: int,
    model: str,
    echo: bool,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(index: int, text: str, finish: str | None) -> str:
        return _sse(
            {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [
                    {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    try:
        if echo:
            for i, row in enumerate(ticket.rows):
                yield chunk(i, row.prompt, None)
        async for index, text in engine.stream(ticket):
            yield chunk(index, text, None)
        results = await ticket.done
        for i, result in enumerate(results):
            yield chunk(i, "", "length" if result.finish_reason == "length" else "stop")
        if include_usage:
            yield _sse(
                {
                    "id": completion_id,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(results).model_dump(),
                }
            )
        yield _sse("[DONE]")
    except QuotegenError as exc:
        yield _sse(_error_body(exc.error_type, exc.message))


async def _native_events(engine: BatchEngine, ticket: Ticket) -> AsyncIterator[str]:
    try:
        async for _, text in engine.stream(ticket):
            yield _sse({"text": text}, event="token")
        (result,) = await ticket.done
        yield _sse(result.model_dump(), event="result")
    except QuotegenError as exc:
        yield _sse(_error_body(exc.error_type, exc.message), event="error")
