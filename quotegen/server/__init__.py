"""The HTTP server: the app factory, routers per API family, and the process that runs it."""

from quotegen.server.app import create_app

__all__ = ["create_app"]
