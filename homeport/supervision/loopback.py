"""Homeport's own small HTTP services on 127.0.0.1: the socket `up` binds, the config."""

from __future__ import annotations

import socket

import uvicorn
from starlette.types import ASGIApp

from homeport.supervision.serving import bind_listener

ADDRESS = "127.0.0.1"


def bind_loopback(port: int, who: str, key: str) -> socket.socket:
    """Claim the port before anything starts; `key` names the setting to change."""
    return bind_listener(ADDRESS, port, who, key)


def loopback_config(app: ASGIApp, port: int, limit_concurrency: int) -> uvicorn.Config:
    """A quiet uvicorn on 127.0.0.1 (`serving.serve_until` under `up`)."""
    return uvicorn.Config(
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
