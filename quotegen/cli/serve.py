"""``quotegen serve``: flags in, the server module runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from quotegen.cli.options import (
    CPUS_PER_REPLICA_OPTION,
    GPUS_PER_REPLICA_OPTION,
    MODEL_OPTION,
    RAY_OPTION,
    REPLICAS_OPTION,
    LoadFlags,
    UsageError,
    check_ray_flags,
    flag_errors,
    load_engine,
    resolve,
)
from quotegen.config import DEFAULT_HOST, DEFAULT_PORT, ENV_API_KEY, ENV_HOST, ENV_PORT, SERVE
from quotegen.console import print_note

if TYPE_CHECKING:
    from quotegen.generation import Engine
    from quotegen.references import ModelRef
    from quotegen.settings import ServeConfig

_FLAGS = {
    "max_batch_size": "--max-batch-size",
    "max_wait_ms": "--max-wait-ms",
    "max_queue": "--max-queue",
    "request_timeout_s": "--timeout",
    "max_body_bytes": "--max-body-bytes",
    "max_prompt_bytes": "--max-prompt-bytes",
    "drain_timeout_s": "--drain-timeout",
}
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def serve(
    model: str | None = MODEL_OPTION,
    host: str = typer.Option(
        DEFAULT_HOST, "--host", envvar=ENV_HOST, help="Interface to bind; 0.0.0.0 for all."
    ),
    port: int = typer.Option(
        DEFAULT_PORT, "--port", "-p", envvar=ENV_PORT, min=0, max=65535, help="TCP port."
    ),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar=ENV_API_KEY,
        show_default=False,
        help="Require 'Authorization: Bearer KEY' on every generation route.",
    ),
    cors_origin: list[str] | None = typer.Option(
        None,
        "--cors-origin",
        show_default=False,
        help="Allowed CORS origin (repeatable); off by default.",
    ),
    max_batch_size: int = typer.Option(
        SERVE.max_batch_size, "--max-batch-size", help="Rows decoded together."
    ),
    max_wait_ms: float = typer.Option(
        SERVE.max_wait_ms, "--max-wait-ms", help="How long a new batch waits for company."
    ),
    max_queue: int = typer.Option(
        SERVE.max_queue, "--max-queue", help="Queued rows before 503 + Retry-After."
    ),
    timeout: float = typer.Option(
        SERVE.request_timeout_s, "--timeout", help="Per-request time limit in seconds."
    ),
    max_body_bytes: int = typer.Option(
        SERVE.max_body_bytes, "--max-body-bytes", help="Largest request body accepted."
    ),
    max_prompt_bytes: int = typer.Option(
        SERVE.max_prompt_bytes, "--max-prompt-bytes", help="Largest prompt, in UTF-8 bytes."
    ),
    drain_timeout: float = typer.Option(
        SERVE.drain_timeout_s,
        "--drain-timeout",
        help="On SIGTERM/SIGINT, seconds to finish work.",
    ),
    log_level: str = typer.Option(
        "info", "--log-level", help="critical, error, warning, info or debug."
    ),
    ray_address: str | None = RAY_OPTION,
    replicas: int = REPLICAS_OPTION,
    max_replicas: int | None = typer.Option(
        None,
        "--max-replicas",
        min=1,
        show_default=False,
        help="With --ray: autoscale from --replicas up to this many on ongoing requests.",
    ),
    cpus_per_replica: float = CPUS_PER_REPLICA_OPTION,
    gpus_per_replica: float = GPUS_PER_REPLICA_OPTION,
    flags: LoadFlags = LoadFlags(),
) -> None:
    """Serve the seeds' HTTP API, OpenAI's completions and chat APIs, and a playground."""
    from quotegen.server.runner import LOG_LEVELS, run_server
    from quotegen.settings import ServeConfig

    if log_level.strip().lower() not in LOG_LEVELS:
        raise UsageError(f"--log-level: unknown level '{log_level}'.")
    with flag_errors(_FLAGS):
        config = ServeConfig(
            api_key=api_key or None,
            cors_origins=list(cors_origin or []),
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            request_timeout_s=timeout,
            max_body_bytes=max_body_bytes,
            max_prompt_bytes=max_prompt_bytes,
            drain_timeout_s=drain_timeout,
        )
    check_ray_flags(ray_address, replicas, cpus_per_replica, gpus_per_replica)
    if max_replicas is not None and ray_address is None:
        raise UsageError("--max-replicas needs --ray.")
    # Fail fast on a bad name or device, before binding the port.
    ref = resolve(model, flags, quiet=False)
    if host not in _LOCAL_HOSTS and not api_key:
        print_note(f"Listening on {host} without --api-key: anyone who can reach it can use it.")

    if ray_address is not None:
        _serve_on_ray(ray_address, ref, flags, config, host, port, replicas, max_replicas,
                      cpus_per_replica, gpus_per_replica)  # fmt: skip
        return

    def loader() -> Engine:
        return load_engine(ref, flags, quiet=False, spinner=False)

    run_server(loader, config, host=host, port=port, log_level=log_level)


def _serve_on_ray(
    address: str,
    ref: ModelRef,
    flags: LoadFlags,
    config: ServeConfig,
    host: str,
    port: int,
    replicas: int,
    max_replicas: int | None,
    cpus: float,
    gpus: float,
) -> None:
    """The app as a Ray Serve deployment (quotegen.server.rayserve), until SIGTERM."""
    from dataclasses import asdict

    from quotegen.cluster import replica_device
    from quotegen.server import rayserve

    if max_replicas is not None and max_replicas < replicas:
        raise UsageError("--max-replicas must be at least --replicas.")
    fields = ref.to_fields()
    options = rayserve.deployment_options(replicas, max_replicas, cpus, gpus, config.max_batch_size)
    scale = f"{replicas} to {max_replicas} replicas" if max_replicas else f"{replicas} replica"
    scale += "s" if not max_replicas and replicas > 1 else ""

    def ready() -> None:
        print_note(
            f"Serving {ref} on http://{host}:{port} with Ray Serve, {scale}. "
            "Ctrl-C or SIGTERM stops it."
        )

    rayserve.run(
        address,
        fields,
        {**asdict(flags), "device": replica_device(gpus)},
        config.model_dump(),
        host=host,
        port=port,
        options=options,
        on_ready=ready,
    )
