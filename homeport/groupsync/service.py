"""Group sync as a supervised service: `homeport groupsync watch` on a loopback port."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import httpx

from homeport.config.groupsync import GroupSync
from homeport.config.types import GROUPSYNC_SERVICE
from homeport.layout import DeploymentLayout
from homeport.supervision import processes
from homeport.supervision.loopback import ADDRESS, bind_loopback
from homeport.supervision.service import RestartPolicy

# A run cut short is finished by the next one (the plan is made again from
# what Synapse holds), so a crash comes back soon, then backs off.
RESTART = RestartPolicy(backoff=(1.0, 2.0, 5.0, 10.0, 30.0, 60.0))


async def health(port: int) -> tuple[int, dict[str, object]] | None:
    """The service's /health status and body, or None when it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            response = await http.get(f"http://{ADDRESS}:{port}/health")
        body = response.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return (response.status_code, body) if isinstance(body, dict) else None


class GroupSyncService:
    kind = "group sync"
    name = GROUPSYNC_SERVICE
    restart = RESTART

    def __init__(self, sync: GroupSync, config_path: Path, layout: DeploymentLayout) -> None:
        self.after = (sync.homeserver,)  # its spaces live there
        self._port = sync.port
        self._config_path = config_path.resolve()
        self._layout = layout
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{ADDRESS}:{self._port}"

    def prepare(self) -> None:
        self._socket = bind_loopback(self._port, "group sync", "group_sync.port")

    async def spawn(self) -> asyncio.subprocess.Process:
        assert self._socket is not None, "prepare() binds the socket first"
        fd = self._socket.fileno()
        command = [sys.executable, "-m", "homeport", "groupsync", "watch"]
        return await processes.spawn(
            [*command, "-c", str(self._config_path), "--fd", str(fd)],
            cwd=self._layout.data_dir,
            console_log=self._layout.groupsync_console,
            label="group sync",
            pass_fds=(fd,),
        )

    async def wait_ready(self, process: asyncio.subprocess.Process) -> str | None:
        """Ready once it serves; whether the directory answers is its /health's to say."""

        async def serving() -> str | None:
            return None if await health(self._port) is None else ""

        return await processes.poll_until(serving, process, timeout=60)

    async def terminate(self, process: asyncio.subprocess.Process) -> None:
        await processes.terminate(process, grace=10)

    def log_tail(self) -> str:
        return processes.tails([self._layout.groupsync_console, self._layout.groupsync_log])

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
