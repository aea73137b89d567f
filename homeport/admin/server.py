"""Serving the admin website over HTTPS with uvicorn: alone, or as `up`'s child process."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn

from homeport.admin.app import create_app
from homeport.admin.synapse import LiveHomeservers
from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.store.database import open_store
from homeport.trust import client_ssl_context


def serve(deployment: Deployment, listen_fd: int | None = None) -> None:
    """Serve until SIGINT or SIGTERM; on `listen_fd` when `up` bound the port already."""
    assert deployment.admin is not None
    layout = DeploymentLayout(deployment.data_dir)
    store = open_store(deployment)
    api = LiveHomeservers(deployment, client_ssl_context(deployment))
    settings = deployment.admin
    config = uvicorn.Config(
        create_app(deployment, api, store=store),
        host=settings.address,
        port=settings.port,
        ssl_certfile=str(layout.admin_tls_certificate),
        ssl_keyfile=str(layout.admin_tls_key),
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    # The socket `up` bound, with its real address family: uvicorn's own `fd=` would
    # take it for a Unix socket, and asyncio then leaves Nagle's algorithm on, which
    # costs every response a 40 ms delayed ACK.
    sockets = None if listen_fd is None else [socket.socket(fileno=listen_fd)]
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        asyncio.run(api.aclose())
        store.dispose()
