"""``quotegen serve``: flags in, the server module runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from quotegen.cli.options import (
    SERVING,
    CpusOpt,
    GpusOpt,
    LoadFlags,
    ModelOpt,
    RayOpt,
    ReplicasOpt,
    Target,
    UsageError,
    check_ray_flags,
    declared_values,
    flag_errors,
)
from quotegen.config import DEFAULT_HOST, DEFAULT_PORT, ENV_HOST, ENV_PORT
from quotegen.console import print_note

if TYPE_CHECKING:
    from quotegen.engine.generation import Engine
    from quotegen.settings import ServeConfig

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def serve(
    context: typer.Context,
    model: ModelOpt = None,
    host: Annotated[
        str,
        typer.Option("--host", envvar=ENV_HOST, help="Interface to bind; 0.0.0.0 for all."),
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", "-p", envvar=ENV_PORT, min=0, max=65535, help="TCP port.")
    ] = DEFAULT_PORT,
    log_level: Annotated[
        str, typer.Option("--log-level", help="critical, error, warning, info or debug.")
    ] = "info",
    ray_address: RayOpt = None,
    replicas: ReplicasOpt = 1,
    max_replicas: Annotated[
        int | None,
        typer.Option(
            "--max-replicas",
            min=1,
            show_default=False,
            rich_help_panel="Ray",
            help="With --ray: autoscale from --replicas up to this many on ongoing requests.",
        ),
    ] = None,
    cpus_per_replica: CpusOpt = 1.0,
    gpus_per_replica: GpusOpt = 0.0,
) -> None:
    """Serve a model over HTTP: the original /generate and /generate_quote routes, OpenAI's
    completions and chat APIs, a native API and a playground."""
    from quotegen.server.runner import LOG_LEVELS, run_server
    from quotegen.settings import ServeConfig

    if log_level.strip().lower() not in LOG_LEVELS:
        raise UsageError(f"--log-level: unknown level '{log_level}'.")
    with flag_errors(context):  # the serve settings' flags (quotegen.config.Serve)
        given = declared_values(context, SERVING)
        given["api_key"] = given["api_key"] or None
        config = ServeConfig(**given)
    check_ray_flags(ray_address, replicas, cpus_per_replica, gpus_per_replica)
    if max_replicas is not None and ray_address is None:
        raise UsageError("--max-replicas needs --ray.")
    # Fail fast on a bad name or device, before binding the port.
    target = Target(model, LoadFlags.of(context))
    if host not in _LOCAL_HOSTS and not config.api_key:
        print_note(f"Listening on {host} without --api-key: anyone who can reach it can use it.")

    if ray_address is not None:
        _serve_on_ray(ray_address, target, config, host, port, replicas, max_replicas,
                      cpus_per_replica, gpus_per_replica)  # fmt: skip
        return

    def loader() -> Engine:
        return target.engine(quiet=False, spinner=False)

    run_server(loader, config, host=host, port=port, log_level=log_level)


def _serve_on_ray(
    address: str,
    target: Target,
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

    from quotegen.jobs.cluster import replica_device
    from quotegen.server import rayserve

    if max_replicas is not None and max_replicas < replicas:
        raise UsageError("--max-replicas must be at least --replicas.")
    ref = target.ref
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
        ref.to_fields(),
        {**asdict(target.flags), "device": replica_device(gpus)},
        config.model_dump(),
        host=host,
        port=port,
        options=options,
        on_ready=ready,
    )
