"""Serving the admin website over HTTPS with uvicorn: alone, or as `up`'s child process."""

from __future__ import annotations

import asyncio

from homeport.admin.app import create_app
from homeport.admin.synapse import LiveHomeservers
from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.store.database import open_store
from homeport.supervision.https_child import serve_https
from homeport.trust import client_ssl_context


def serve(deployment: Deployment, listen_fd: int | None = None) -> None:
    """Serve until SIGINT or SIGTERM; on `listen_fd` when `up` bound the port already."""
    assert deployment.admin is not None
    layout = DeploymentLayout(deployment.data_dir)
    store = open_store(deployment)
    api = LiveHomeservers(deployment, client_ssl_context(deployment))
    settings = deployment.admin
    tls = (str(layout.admin_tls_certificate), str(layout.admin_tls_key))
    try:
        serve_https(
            create_app(deployment, api, store=store),
            settings.address,
            settings.port,
            tls,
            listen_fd,
            forwarded_from=None if deployment.proxy is None else deployment.proxy.forwarded_from,
        )
    finally:
        asyncio.run(api.aclose())
        store.dispose()
