"""``serve --ray``: the same FastAPI app (every route, auth, limits, metrics, the page) as a Ray
Serve deployment of model replicas, autoscaled on ongoing requests.

Each replica builds the app with ``create_app`` when it starts (``__serve_build_asgi_app__``)
and loads its model through ``quotegen.model.load_model``; Ray Serve runs the app's lifespan,
so each replica has its own continuous-batching scheduler, started and drained as under
uvicorn. Ray's HTTP proxy routes requests to the replicas. Imported only with ``--ray``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping
from typing import Any

from ray import serve

from quotegen.cluster import connect, disconnect

APP_NAME = "quotegen"


@serve.ingress()
class QuotegenReplica:
    """One model replica serving the whole app."""

    def __init__(
        self, model: Mapping[str, Any], load: Mapping[str, Any], config: Mapping[str, Any]
    ) -> None:
        self.model = dict(model)
        self.load = dict(load)
        self.config = dict(config)

    def __serve_build_asgi_app__(self) -> Any:
        from quotegen.cluster import model_ref
        from quotegen.generation import Engine
        from quotegen.model import load_model
        from quotegen.server.app import create_app
        from quotegen.settings import ServeConfig

        def loader() -> Engine:
            return Engine(load_model(model_ref(self.model), **self.load))

        return create_app(loader=loader, config=ServeConfig(**self.config))


def deployment_options(
    replicas: int,
    max_replicas: int | None,
    cpus: float,
    gpus: float,
    max_batch_size: int,
) -> dict[str, Any]:
    """Replicas (fixed, or autoscaled from ``replicas`` up to ``max_replicas`` on ongoing
    requests), what each reserves, and how many requests each takes at once (enough to fill
    its batches: Ray Serve's default of 5 would starve continuous batching)."""
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": cpus, "num_gpus": gpus},
        "max_ongoing_requests": max(max_batch_size * 2, 8),
        "graceful_shutdown_timeout_s": 30,
    }
    if max_replicas is None or max_replicas <= replicas:
        options["num_replicas"] = replicas
    else:
        options["autoscaling_config"] = {
            "min_replicas": replicas,
            "initial_replicas": replicas,
            "max_replicas": max_replicas,
            # Scale out when a replica averages more ongoing requests than half a batch.
            "target_ongoing_requests": max(1, max_batch_size // 2),
        }
    return options


def run(
    address: str,
    model: Mapping[str, Any],
    load: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    host: str,
    port: int,
    options: Mapping[str, Any],
    on_ready: Any = None,
) -> None:
    """Deploy and serve until SIGTERM/SIGINT; then shut the app down and, if this process
    started the Ray cluster, the cluster too (no Ray process of ours is left behind)."""
    stop = threading.Event()
    started = connect(address)
    # After Ray's start-up, which installs handlers of its own: ours stop the app cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        deployment = serve.deployment(QuotegenReplica, name="QuotegenReplica", **options)
        serve.run(
            deployment.bind(dict(model), dict(load), dict(config)),
            name=APP_NAME,
            route_prefix="/",
            blocking=False,
        )
        if on_ready is not None:
            on_ready()
        stop.wait()
    finally:
        try:
            serve.shutdown()
        finally:
            disconnect(started)
