"""Homeport's own small HTTP services on 127.0.0.1: the socket `up` binds, the server."""

from __future__ import annotations

import logging
import socket

import uvicorn
from starlette.types import ASGIApp

from homeport.supervision.https_child import bind_listener

ADDRESS = "127.0.0.1"


def bind_loopback(port: int, who: str, key: str) -> socket.socket:
    """Claim the port before anything starts; `key` names the setting to change."""
    return bind_listener(ADDRESS, port, who, key)


def loopback_server(
    app: ASGIApp, port: int, listen_fd: int | None, limit_concurrency: int
) -> tuple[uvicorn.Server, list[socket.socket] | None]:
    """A quiet uvicorn on the socket `up` passed down (or on the port, run alone)."""
    config = uvicorn.Config(
        app,
        host=ADDRESS,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        limit_concurrency=limit_concurrency,
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    sockets = None if listen_fd is None else [socket.socket(fileno=listen_fd)]
    return uvicorn.Server(config), sockets
