"""Serving the admin website over HTTPS with uvicorn, inside `homeport up` or alone."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator

import uvicorn

from homeport.admin.app import AdminSite
from homeport.config.deployment import Deployment
from homeport.errors import HomeportError
from homeport.layout import DeploymentLayout


class _QuietServer(uvicorn.Server):
    """Leaves signals to Homeport's supervisor, which stops the website with everything else."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def admin_server(
    deployment: Deployment, synapse_ssl: ssl.SSLContext, own_signals: bool = False
) -> uvicorn.Server:
    """A uvicorn server for the website; `own_signals` when it runs alone (`homeport admin`)."""
    assert deployment.admin is not None
    layout = DeploymentLayout(deployment.data_dir)
    site = AdminSite(deployment, synapse_ssl)
    config = uvicorn.Config(
        site.app(),
        host=deployment.admin.address,
        port=deployment.admin.port,
        ssl_certfile=str(layout.admin_tls_certificate),
        ssl_keyfile=str(layout.admin_tls_key),
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    return uvicorn.Server(config) if own_signals else _QuietServer(config)


def bind_admin_socket(deployment: Deployment) -> socket.socket:
    """Bind the website's port before any homeserver starts, so a taken port stops `up` cleanly."""
    assert deployment.admin is not None
    address, port = deployment.admin.address, deployment.admin.port
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as error:
        sock.close()
        raise HomeportError(
            f"the admin website cannot listen on {address}:{port}: {error.strerror}; "
            "free that port or change `admin.port`"
        ) from error
    sock.listen(128)
    sock.setblocking(False)
    return sock
