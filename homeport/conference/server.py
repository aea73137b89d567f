"""Serving the conference service over HTTPS: alone (`homeport conference`) or under `up`."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette

from homeport.conference.app import Settings, create_app
from homeport.conference.matrix import Matrix, conference_ssl_context
from homeport.conference.secrets import read_secrets
from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.logs import log_to_file

MAX_CONNECTIONS = 512  # beyond it uvicorn answers 503 at once: a flood cannot pile up


def tls_files(deployment: Deployment) -> tuple[str, str]:
    conference = deployment.conference
    assert conference is not None
    if conference.tls is not None:
        return str(conference.tls.certificate), str(conference.tls.key)
    layout = DeploymentLayout(deployment.data_dir)
    return str(layout.conference_tls_certificate), str(layout.conference_tls_key)


def serve(deployment: Deployment, listen_fd: int | None = None) -> None:
    """Serve until SIGINT or SIGTERM; on `listen_fd` when `up` bound the port already."""
    conference = deployment.conference
    assert conference is not None
    layout = DeploymentLayout(deployment.data_dir)
    log_to_file(layout.conference_log, "homeport.conference")
    matrix = Matrix(deployment, conference_ssl_context(deployment))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await matrix.aclose()  # on the loop its connections belong to

    settings = Settings(conference, read_secrets(conference, layout))
    app = create_app(settings, matrix, lifespan=lifespan)
    certificate, key = tls_files(deployment)
    config = uvicorn.Config(
        app,
        host=conference.address,
        port=conference.port,
        ssl_certfile=certificate,
        ssl_keyfile=key,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        limit_concurrency=MAX_CONNECTIONS,
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    sockets = None if listen_fd is None else [socket.socket(fileno=listen_fd)]
    logging.getLogger("homeport.conference").info(
        "serving", extra={"url": conference.url, "jitsi": conference.jitsi is not None}
    )
    uvicorn.Server(config).run(sockets=sockets)
