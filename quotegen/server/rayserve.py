"""``serve --ray``: the same FastAPI app (every route, auth, limits, metrics, the page) as a Ray
Serve deployment of model replicas, autoscaled on ongoing requests.

Each replica builds the app with ``create_app`` when it starts (``__serve_build_asgi_app__``)
and loads its model through ``quotegen.loading.model.load_model``; Ray Serve runs the app's
lifespan, so each replica has its own continuous-batching scheduler, started and drained as under
uvicorn. Ray's HTTP proxy routes requests to the replicas. Imported only with ``--ray``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping
from typing import Any

from ray import serve

from quotegen.jobs.cluster import connect, disconnect, replica_device

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
        from quotegen import get_model
        from quotegen.engine.generation import Engine
        from quotegen.loading.model import placement_of
        from quotegen.loading.references import ModelRef
        from quotegen.server.app import create_app
        from quotegen.settings import ServeConfig

        def loader() -> Engine:
            placement, options = placement_of(self.load)  # checked where the replica runs
            return get_model(ModelRef.from_fields(self.model), placement, **options)

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


def application(
    model: Mapping[str, Any],
    load: Mapping[str, Any],
    config: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
) -> Any:
    """The Serve application: the replica deployment bound to a model, how to load it, and
    the server's limits (``ServeConfig`` fields)."""
    deployment = serve.deployment(QuotegenReplica, name="QuotegenReplica", **(options or {}))
    return deployment.bind(dict(model), dict(load), dict(config))


def app_builder(args: Mapping[str, str]) -> Any:
    """For a Serve config file (``import_path: quotegen.server.rayserve:app_builder``, as in
    deploy/rayservice.yaml): ``args`` ``model`` (else ``QUOTEGEN_MODEL``, else the default
    model), ``api_key`` (else ``QUOTEGEN_API_KEY``), ``quantize`` and ``max_batch_size``;
    replicas and autoscaling come from the config file's deployment options."""

    from quotegen.config import ENV_API_KEY, ENV_MODEL, SERVE, env
    from quotegen.loading.references import resolve_model
    from quotegen.settings import ServeConfig

    ref = resolve_model(args.get("model") or env(ENV_MODEL))
    fields = ref.to_fields()
    given = {
        "api_key": args.get("api_key") or env(ENV_API_KEY),
        "max_batch_size": int(args.get("max_batch_size", SERVE.max_batch_size)),
    }
    config = ServeConfig(**given)
    load = {"device": replica_device(0), "quantize": args.get("quantize", "none")}
    return application(fields, load, config.model_dump())


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
        serve.run(
            application(model, load, config, options),
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
