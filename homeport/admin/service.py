"""The admin website as a supervised service: its own process, on a port `up` binds first.

`up` binds the website's port before any homeserver starts (a taken port
stops `up` cleanly, before anything runs) and hands the listening socket to
each process of the website it starts: `homeport admin --fd N`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from ipaddress import ip_address
from pathlib import Path

import httpx

from homeport.config.admin import AdminWebsite
from homeport.errors import HomeportError
from homeport.layout import DeploymentLayout
from homeport.runtime import processes
from homeport.runtime.service import RestartPolicy


def bind_listener(address: str, port: int) -> socket.socket:
    """A listening, non-blocking socket, or a HomeportError that says what to change."""
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


async def health(settings: AdminWebsite, ssl_context: ssl.SSLContext) -> str | None:
    """ "" once the website answers /health over verified TLS, else None.

    Asked on the address it binds (loopback when it binds all), with its host
    name for TLS, so the check needs no DNS.
    """
    address = settings.address
    if ip_address(address).is_unspecified:
        address = "::1" if ":" in address else "127.0.0.1"
    host = f"[{address}]" if ":" in address else address
    try:
        async with httpx.AsyncClient(verify=ssl_context, timeout=3.0) as http:
            response = await http.get(
                f"https://{host}:{settings.port}/health",
                headers={"Host": f"{settings.host}:{settings.port}"},
                extensions={"sni_hostname": settings.host},
            )
    except (httpx.HTTPError, OSError):
        return None
    return "" if response.status_code == 200 else None


class AdminWebsiteService:
    kind = "admin website"
    name = "admin"
    restart = RestartPolicy()

    def __init__(
        self,
        settings: AdminWebsite,
        config_path: Path,
        layout: DeploymentLayout,
        ssl_context: ssl.SSLContext,
        after: tuple[str, ...] = (),
    ) -> None:
        self.after = after  # the homeservers: the website is no use before them
        self._settings = settings
        self._config_path = config_path.resolve()
        self._layout = layout
        self._ssl = ssl_context
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return self._settings.url

    def prepare(self) -> None:
        self._socket = bind_listener(self._settings.address, self._settings.port)

    async def spawn(self) -> asyncio.subprocess.Process:
        assert self._socket is not None, "prepare() binds the socket first"
        fd = self._socket.fileno()
        command = [sys.executable, "-m", "homeport", "admin", "-c", str(self._config_path)]
        return await processes.spawn(
            [*command, "--fd", str(fd)],
            cwd=self._layout.data_dir,
            console_log=self._layout.admin_log,
            label="the admin website",
            pass_fds=(fd,),
            niceness=10,  # the homeservers serve everyone; the website a few admins
        )

    async def wait_ready(self, process: asyncio.subprocess.Process) -> str | None:
        return await processes.poll_until(
            lambda: health(self._settings, self._ssl), process, timeout=120
        )

    async def terminate(self, process: asyncio.subprocess.Process) -> None:
        await processes.terminate(process, grace=10)

    def log_tail(self) -> str:
        return processes.tails([self._layout.admin_log])

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
