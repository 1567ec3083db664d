"""The two tutorials' routes, byte-compatible: seed 1's ``POST /generate`` and seed 2's
``POST /generate_quote``, and the page at ``/`` that greets both kinds of client."""

from __future__ import annotations

import html
import logging
import random
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from quotegen.schemas import Seed1Request, Seed1Response, Seed2Message, Seed2Query
from quotegen.server.deps import Auth, Service, State
from quotegen.server.responses import ERRORS
from quotegen.settings import GenerationSettings
from quotegen.text import choose_prompt

log = logging.getLogger("quotegen.server")

SEED2_MESSAGE = "This is Quote Generation API test"

router = APIRouter()


@cache
def static_text(name: str) -> str:
    """A file of the page, shipped as package data."""
    return (resources.files("quotegen.server") / "static" / name).read_text("utf-8")


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "text/html" not in accept


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


@router.get(
    "/",
    response_class=HTMLResponse,
    summary="The playground page (seed 2's greeting for JSON clients)",
    responses={200: {"content": {"application/json": {"example": {"message": SEED2_MESSAGE}}}}},
)
async def index(request: Request, state: State) -> Response:
    """The playground: settings, streamed samples, copy buttons (static/). `Accept:
    application/json` gets seed 2's greeting message."""
    if _wants_json(request):
        return JSONResponse(Seed2Message(message=SEED2_MESSAGE).model_dump())
    name = state.engine.info.name if state.engine is not None else "loading…"
    return HTMLResponse(static_text("index.html").replace("__MODEL__", html.escape(name)))


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    """For clients that ask for /favicon.ico without reading the page's icon link."""
    return Response(static_text("favicon.svg"), media_type="image/svg+xml")


@router.post(
    "/generate",
    response_model=Seed1Response,
    dependencies=Auth,
    responses=ERRORS,
    summary="Seed 1: continue a text (prompt included in the result)",
)
async def generate_seed1(body: Seed1Request, request: Request, service: Service) -> Seed1Response:
    """Seed 1's route: `max_length` 35 tokens including the prompt, sampling with top-k 50.

    Optional fields (`seed`, `temperature`, `max_new_tokens`, …) override those defaults.
    """
    service.check_prompts([body.text], "text")
    prompt = _seed_route_prompt(body.text, body.given().get("seed"))
    used = service.engine.count_tokens(prompt)
    base = _seed_settings(used, max_length=35, top_k=50, top_p=1.0, clean=False)
    (result,) = await service.results(service.tickets.submit([prompt], body.apply(base)), request)
    return Seed1Response(generated_text=result.text)


@router.post(
    "/generate_quote",
    response_model=str,
    dependencies=Auth,
    responses=ERRORS,
    summary="Seed 2: generate a quote (a bare JSON string, prompt included)",
)
async def generate_quote(
    query: Annotated[Seed2Query, Query()], request: Request, service: Service
) -> JSONResponse:
    """Seed 2's route: `min_length` 3 and `max_length` 25 tokens including the prompt,
    `top_p` 0.9, `top_k` 0, `temperature` 1.0, cleaned. An empty prompt picks a default.
    """
    service.check_prompts([query.prompt], "prompt")
    prompt = _seed_route_prompt(query.prompt, query.given().get("seed"))
    log.info("Prompt selected: %s", prompt)
    used = service.engine.count_tokens(prompt)
    base = _seed_settings(used, max_length=25, min_length=3, top_k=0, top_p=0.9, clean=True)
    (result,) = await service.results(service.tickets.submit([prompt], query.apply(base)), request)
    log.info("Quote generated")
    return JSONResponse(result.text)
