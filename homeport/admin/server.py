"""Serving the admin website over HTTPS with uvicorn: alone, or hosted under `up`."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Sequence

from homeport.admin.app import create_app
from homeport.admin.synapse import LiveHomeservers
from homeport.capability import WebsitePages
from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.store.database import open_store
from homeport.supervision.serving import https_config, run_alone, serve_until
from homeport.trust import client_ssl_context


async def run(
    deployment: Deployment,
    pages: Sequence[WebsitePages],
    listening: socket.socket | None,
    stop: asyncio.Event,
) -> None:
    """Serve until `stop` is set, with the capabilities' `pages`; on `listening` when `up`
    bound the port already."""
    assert deployment.admin is not None
    layout = DeploymentLayout(deployment.data_dir)
    store = open_store(deployment)
    api = LiveHomeservers(deployment, client_ssl_context(deployment))
    settings = deployment.admin
    tls = (str(layout.admin_tls_certificate), str(layout.admin_tls_key))
    config = https_config(
        create_app(deployment, api, store=store, pages=pages),
        settings.address,
        settings.port,
        tls,
        forwarded_from=None if deployment.proxy is None else deployment.proxy.forwarded_from,
    )
    try:
        await serve_until(config, listening, stop)
    finally:
        await api.aclose()
        store.dispose()


def serve(deployment: Deployment, pages: Sequence[WebsitePages]) -> None:
    """Serve alone until SIGINT or SIGTERM."""
    run_alone(functools.partial(run, deployment, pages))
