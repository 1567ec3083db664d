"""Operations: readiness (``/health``), what is served (``/info``), Prometheus ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from quotegen import __version__
from quotegen.config import MAX_NEW_TOKENS, MAX_PROMPTS, MAX_SAMPLES, SERVE_LIMITS
from quotegen.schemas import Health, Info, Limits
from quotegen.server.deps import Auth, Service, State

router = APIRouter()


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "Loading or failed"}},
    summary="Readiness: 200 when the model is loaded, 503 before",
)
async def health(state: State) -> JSONResponse:
    body = Health(status=state.status, detail=state.detail)
    return JSONResponse(body.model_dump(), status_code=200 if state.status == "ok" else 503)


@router.get("/info", response_model=Info, dependencies=Auth, summary="Model, device and limits")
async def info(service: Service) -> Info:
    model = service.engine.info
    config = service.config
    return Info(
        model=model.name,
        revision=model.revision,
        device=model.device,
        dtype=model.dtype,
        quantize=model.quantize,
        chat_template=model.chat_template,
        version=__version__,
        limits=Limits(
            **config.model_dump(include=set(SERVE_LIMITS)),
            max_prompts=MAX_PROMPTS,
            max_new_tokens=MAX_NEW_TOKENS,
            max_samples=MAX_SAMPLES,
            context_length=model.context_length,
        ),
        defaults=service.settings({}),
    )


@router.get(
    "/metrics",
    dependencies=Auth,
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
    summary="Prometheus metrics",
)
async def metrics(state: State) -> Response:
    if state.scheduler is not None:
        state.metrics.queue_depth.set(state.scheduler.queue_depth)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
