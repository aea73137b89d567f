"""Homeport's own small HTTP services on 127.0.0.1: the socket `up` binds, the config."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from homeport.supervision.serving import bind_listener, quiet_config

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

ADDRESS = "127.0.0.1"


def bind_loopback(port: int, who: str, key: str) -> socket.socket:
    """Claim the port before anything starts; `key` names the setting to change."""
    return bind_listener(ADDRESS, port, who, key)


def loopback_config(app: ASGIApp, port: int, limit_concurrency: int) -> uvicorn.Config:
    """A quiet uvicorn on 127.0.0.1 (`serving.serve_until` under `up`)."""
    return quiet_config(app, ADDRESS, port, limit_concurrency, lifespan="off")


async def loopback_health(port: int) -> tuple[int, dict[str, object]] | None:
    """A loopback service's /health status and body, or None when it does not answer."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            response = await http.get(f"http://{ADDRESS}:{port}/health")
        body = response.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return (response.status_code, body) if isinstance(body, dict) else None
