"""Running the app: uvicorn start-up, logging, and a clean shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable

from quotegen.engine.generation import TextEngine
from quotegen.errors import QuotegenError
from quotegen.settings import ServeConfig

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def run_server(
    loader: Callable[[], TextEngine],
    config: ServeConfig,
    *,
    host: str,
    port: int,
    log_level: str = "info",
) -> None:
    """Serve until SIGTERM/SIGINT (queued and running work drains first). The model loads in
    the background while the port already answers ``/health`` with 503; a model that fails to
    load stops the server and its error is raised here."""
    import uvicorn

    from quotegen.server.app import create_app

    level = log_level.strip().lower()
    if level not in LOG_LEVELS:
        raise QuotegenError(f"Unknown log level '{log_level}': use one of {', '.join(LOG_LEVELS)}.")
    logging.basicConfig(
        level=level.upper(), format="%(levelname)s:     %(message)s", stream=sys.stderr
    )
    failure: list[QuotegenError] = []

    def load_failed(error: QuotegenError) -> None:
        failure.append(error)
        server.should_exit = True

    app = create_app(loader=loader, config=config, on_load_failed=load_failed)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=level,
            access_log=False,
            timeout_graceful_shutdown=max(1, round(config.drain_timeout_s)),
            server_header=False,
        )
    )
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; a drained server is a
    # clean exit, so those re-raised signals land on no-op handlers.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    if failure:
        raise failure[0]
    if not server.started:
        raise QuotegenError(f"The server could not start on {host}:{port} (see the log above).")
