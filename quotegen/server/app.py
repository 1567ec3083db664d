"""The app factory: one FastAPI app around one engine, nothing built at import time.

``create_app`` takes a ready engine, or a loader that the lifespan runs in the background (so
``/health`` answers 503 while the model loads). Every generation route goes through one
scheduler; routers per API family, middleware per job.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from quotegen import __version__
from quotegen.engine.generation import TextEngine
from quotegen.errors import QuotegenError
from quotegen.server.chat import router as chat_router
from quotegen.server.middleware import AccessLogMiddleware, BodyLimitMiddleware, MetricsMiddleware
from quotegen.server.native import router as native_router
from quotegen.server.openai import router as openai_router
from quotegen.server.ops import router as ops_router
from quotegen.server.responses import install_error_handlers
from quotegen.server.seeds import router as seeds_router
from quotegen.server.state import ServerState
from quotegen.settings import ServeConfig


def create_app(
    engine: TextEngine | None = None,
    *,
    loader: Callable[[], TextEngine] | None = None,
    config: ServeConfig | None = None,
    on_load_failed: Callable[[QuotegenError], None] | None = None,
) -> FastAPI:
    """Build the app around a ready ``engine``, or a ``loader`` run in the background."""
    if engine is None and loader is None:
        raise ValueError("create_app needs an engine or a loader")
    config = config or ServeConfig()
    state = ServerState(config, engine, loader, on_load_failed)
    # FastAPI builds its body and query-model parameters with an alias pydantic ignores, and
    # pydantic warns on the first request to each such route: FastAPI's, not the operator's.
    warnings.filterwarnings("ignore", message="The 'alias' attribute with value")

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
    install_error_handlers(app)
    routers = (seeds_router, openai_router, chat_router, native_router, ops_router)
    for router in routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    routes = {getattr(r, "path", "") for router in routers for r in router.routes}
    # Added innermost first: the body limit sits closest to the routes, so the metrics and
    # the access log also see the 413s it sends.
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, routes=routes)
    app.add_middleware(AccessLogMiddleware)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app
