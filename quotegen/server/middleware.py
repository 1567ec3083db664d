"""ASGI middleware, one job each: the request body limit, request metrics, the access log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quotegen.openai.format import error_body
from quotegen.server.state import Metrics

access_log = logging.getLogger("quotegen.access")


async def _observe(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, done: Callable[[int, float], None]
) -> None:
    """Run ``app``, then tell ``done`` the status sent (500 if none) and the seconds taken."""
    started = time.perf_counter()
    status = 500

    async def send_wrapper(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, send_wrapper)
    finally:
        done(status, time.perf_counter() - started)


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413, by header or as they stream in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        received = 0
        started = False

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                raise _BodyTooLarge
            await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLarge:
            if not started:
                message = f"The request body exceeds the limit of {limit} bytes."
                response = JSONResponse(
                    error_body("request_too_large", message, 413), status_code=413
                )
                await response(scope, receive, send)


class MetricsMiddleware:
    """Count requests by route and status, and time them (unknown paths count as "other")."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: set[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in self.routes else "other"

        def done(status: int, seconds: float) -> None:
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(seconds)

        await _observe(self.app, scope, receive, send, done)


class AccessLogMiddleware:
    """One log line per request: client, method, path, status and time taken."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("-", 0)

        def done(status: int, seconds: float) -> None:
            access_log.info(
                '%s:%s "%s %s" %s %.1f ms',
                client[0],
                client[1],
                scope.get("method", "-"),
                scope.get("path", ""),
                status,
                seconds * 1000,
            )

        await _observe(self.app, scope, receive, send, done)
