"""Homeport's own HTTPS services as supervised children: `homeport <command> --fd N`.

`up` binds the service's port before any homeserver starts (a taken port
stops `up` cleanly, before anything runs) and hands the listening socket to
each process of the service it starts. The admin website and the conference
service are such children.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from homeport.errors import HomeportError
from homeport.layout import DeploymentLayout
from homeport.supervision import processes
from homeport.supervision.service import RestartPolicy


def bind_listener(address: str, port: int, who: str, key: str) -> socket.socket:
    """A listening, non-blocking socket, or a HomeportError that says what to change."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as error:
        sock.close()
        raise HomeportError(
            f"{who} cannot listen on {address}:{port}: {error.strerror}; "
            f"free that port or change `{key}`"
        ) from error
    sock.listen(128)
    sock.setblocking(False)
    return sock


def serve_https(
    app: ASGIApp,
    address: str,
    port: int,
    tls: tuple[str, str],
    listen_fd: int | None,
    limit_concurrency: int | None = None,
    forwarded_from: list[str] | None = None,
) -> None:
    """A quiet uvicorn over TLS (`tls`: certificate, key) until SIGINT or SIGTERM.

    The client address comes from X-Forwarded-For only behind the deployment's
    proxy, and only on a connection from where the proxy connects from
    (`forwarded_from`: loopback on one machine); otherwise anyone could name
    their own address and dodge the per-address limits.

    On the socket `up` bound, with its real address family: uvicorn's own
    `fd=` would take it for a Unix socket, and asyncio then leaves Nagle's
    algorithm on, which costs every response a 40 ms delayed ACK.
    """
    config = uvicorn.Config(
        app,
        host=address,
        port=port,
        ssl_certfile=tls[0],
        ssl_keyfile=tls[1],
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        limit_concurrency=limit_concurrency,
        proxy_headers=forwarded_from is not None,
        forwarded_allow_ips=forwarded_from or [],
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    sockets = None if listen_fd is None else [socket.socket(fileno=listen_fd)]
    uvicorn.Server(config).run(sockets=sockets)


async def https_health(
    address: str, port: int, host: str, ssl_context: ssl.SSLContext
) -> str | None:
    """ "" once the service answers /health over verified TLS, else None.

    Asked on the address it binds (loopback when it binds all), with its host
    name for TLS, so the check needs no DNS.
    """
    if ip_address(address).is_unspecified:
        address = "::1" if ":" in address else "127.0.0.1"
    literal = f"[{address}]" if ":" in address else address
    try:
        async with httpx.AsyncClient(verify=ssl_context, timeout=3.0) as http:
            response = await http.get(
                f"https://{literal}:{port}/health",
                headers={"Host": f"{host}:{port}"},
                extensions={"sni_hostname": host},
            )
    except (httpx.HTTPError, OSError):
        return None
    return "" if response.status_code == 200 else None


@dataclass(frozen=True)
class Child:
    """What differs between Homeport's HTTPS children."""

    name: str  # in `services`, for `homeport stop NAME`
    kind: str
    command: str  # `homeport <command> -c FILE --fd N`
    label: str  # "the admin website", in messages
    port_key: str  # the setting to change when the port is taken
    address: str
    port: int
    host: str
    console_log: Path
    logs: tuple[Path, ...] = ()  # shown with the console when it fails
    niceness: int = 0


class HttpsChildService:
    restart = RestartPolicy()

    def __init__(
        self,
        child: Child,
        config_path: Path,
        layout: DeploymentLayout,
        ssl_context: ssl.SSLContext,
        after: tuple[str, ...] = (),
    ) -> None:
        self.after = after
        self.name = child.name
        self.kind = child.kind
        self._child = child
        self._config_path = config_path.resolve()
        self._layout = layout
        self._ssl = ssl_context
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"https://{self._child.host}:{self._child.port}"

    def prepare(self) -> None:
        child = self._child
        self._socket = bind_listener(child.address, child.port, child.label, child.port_key)

    async def spawn(self) -> asyncio.subprocess.Process:
        assert self._socket is not None, "prepare() binds the socket first"
        fd = self._socket.fileno()
        child = self._child
        command = [sys.executable, "-m", "homeport", child.command, "-c", str(self._config_path)]
        return await processes.spawn(
            [*command, "--fd", str(fd)],
            cwd=self._layout.data_dir,
            console_log=child.console_log,
            label=child.label,
            pass_fds=(fd,),
            niceness=child.niceness,
        )

    async def wait_ready(self, process: asyncio.subprocess.Process) -> str | None:
        child = self._child
        return await processes.poll_until(
            lambda: https_health(child.address, child.port, child.host, self._ssl),
            process,
            timeout=120,
        )

    async def terminate(self, process: asyncio.subprocess.Process) -> None:
        await processes.terminate(process, grace=10)

    def log_tail(self) -> str:
        return processes.tails([self._child.console_log, *self._child.logs])

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
