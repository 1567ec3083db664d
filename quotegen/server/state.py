"""The app's state: the engine (loaded now or in the background), the scheduler, metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from quotegen.engine.generation import TextEngine
from quotegen.engine.scheduler import Scheduler
from quotegen.errors import NotReadyError, QuotegenError
from quotegen.server.tickets import Tickets
from quotegen.settings import ServeConfig

log = logging.getLogger("quotegen.server")


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
    """The app's engine, scheduler and status, shared with routes through a dependency."""

    def __init__(
        self,
        config: ServeConfig,
        engine: TextEngine | None,
        loader: Callable[[], TextEngine] | None,
        on_load_failed: Callable[[QuotegenError], None] | None,
    ) -> None:
        self.config = config
        self.metrics = Metrics()
        self.engine = engine
        self.loader = loader
        self.on_load_failed = on_load_failed
        self.scheduler: Scheduler | None = None
        self.tickets: Tickets | None = None
        self.status: str = "loading"
        self.detail: str | None = None
        self.created = int(time.time())

    def start(self) -> None:
        if self.engine is not None:
            self._ready(self.engine)
        else:
            threading.Thread(target=self._load, name="quotegen-loader", daemon=True).start()

    def ready_tickets(self) -> Tickets:
        """The request door once the model is ready; a clear 503 before."""
        if self.tickets is None:
            if self.status == "failed":
                raise NotReadyError(f"The model failed to load: {self.detail}")
            raise NotReadyError("The model is still loading; retry in a few seconds.")
        return self.tickets

    def _load(self) -> None:
        assert self.loader is not None
        try:
            engine = self.loader()
        except QuotegenError as exc:
            self._failed(exc.message, exc)
            log.error("Error: %s", exc.message)
            return
        except Exception as exc:  # surfaced in /health and the log; the server stays up
            log.exception("Could not load the model")
            detail = f"{type(exc).__name__}: {exc}"
            self._failed(detail, QuotegenError(detail))
            return
        self._ready(engine)

    def _failed(self, detail: str, error: QuotegenError) -> None:
        self.status, self.detail = "failed", detail
        if self.on_load_failed is not None:
            self.on_load_failed(error)

    def _ready(self, engine: TextEngine) -> None:
        config, metrics = self.config, self.metrics
        self.engine = engine
        self.scheduler = Scheduler(
            engine,
            max_batch_size=config.max_batch_size,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            on_batch=metrics.batch_size.observe,
            on_queue=metrics.queue_depth.set,
            on_running=metrics.running_rows.set,
        )
        self.tickets = Tickets(
            engine,
            self.scheduler,
            request_timeout_s=config.request_timeout_s,
            on_tokens=metrics.tokens.inc,
        )
        self.scheduler.start()
        self.status = "ok"
        log.info("Model %s ready on %s", engine.info.name, engine.info.device)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop(self.config.drain_timeout_s)
