"""Serving the conference service over HTTPS: alone (`homeport conference`) or hosted
under `up`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from homeport.conference.app import Settings, create_app
from homeport.conference.matrix import Matrix, conference_ssl_context
from homeport.conference.secrets import read_secrets
from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.logs import log_to_file
from homeport.supervision.serving import https_config, run_alone, serve_until

MAX_CONNECTIONS = 512  # beyond it uvicorn answers 503 at once: a flood cannot pile up


def tls_files(deployment: Deployment) -> tuple[str, str]:
    conference = deployment.conference
    assert conference is not None
    if conference.tls is not None:
        return str(conference.tls.certificate), str(conference.tls.key)
    layout = DeploymentLayout(deployment.data_dir)
    return str(layout.conference_tls_certificate), str(layout.conference_tls_key)


async def run(deployment: Deployment, listening: socket.socket | None, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; on `listening` when `up` bound the port already."""
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
    logging.getLogger("homeport.conference").info(
        "serving", extra={"url": conference.url, "jitsi": conference.jitsi is not None}
    )
    config = https_config(
        app,
        conference.address,
        conference.port,
        tls_files(deployment),
        limit_concurrency=MAX_CONNECTIONS,
        forwarded_from=None if deployment.proxy is None else deployment.proxy.forwarded_from,
    )
    await serve_until(config, listening, stop)


def serve(deployment: Deployment) -> None:
    """Serve alone until SIGINT or SIGTERM."""
    run_alone(functools.partial(run, deployment))
