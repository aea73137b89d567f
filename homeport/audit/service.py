"""The audit bot as a supervised service: its own process, on a loopback port `up` binds."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import httpx

from homeport.audit.registration import BOT_ADDRESS
from homeport.config.homeserver import Homeserver
from homeport.config.types import AUDIT_SERVICE_PREFIX
from homeport.layout import DeploymentLayout
from homeport.supervision import processes
from homeport.supervision.loopback import bind_loopback
from homeport.supervision.service import RestartPolicy

# A bot killed in the middle of a transaction loses nothing (Synapse sends it
# again), so it comes back at once, then backs off if it keeps crashing.
RESTART = RestartPolicy(backoff=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0))


def service_name(homeserver: str) -> str:
    return AUDIT_SERVICE_PREFIX + homeserver


async def bot_health(port: int) -> dict[str, object] | None:
    """The bot's /health answer, or None when it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            response = await http.get(f"http://{BOT_ADDRESS}:{port}/health")
        body = response.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


class AuditBotService:
    kind = "audit bot"
    restart = RESTART

    def __init__(
        self, homeserver: str, hs: Homeserver, config_path: Path, layout: DeploymentLayout
    ) -> None:
        bot = hs.audit_bot
        assert bot is not None
        self.name = service_name(homeserver)
        self.after = (homeserver,)  # Synapse first: it loads the bot's registration
        self._homeserver = homeserver
        self._port = bot.port
        self._config_path = config_path.resolve()
        self._layout = layout
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{BOT_ADDRESS}:{self._port}"

    def prepare(self) -> None:
        self._socket = bind_loopback(
            self._port, f"the audit bot of {self._homeserver!r}", "audit.port"
        )

    async def spawn(self) -> asyncio.subprocess.Process:
        assert self._socket is not None, "prepare() binds the socket first"
        fd = self._socket.fileno()
        command = [sys.executable, "-m", "homeport", "audit", "run", "-c", str(self._config_path)]
        return await processes.spawn(
            [*command, self._homeserver, "--fd", str(fd)],
            cwd=self._layout.data_dir,
            console_log=self._layout.audit(self._homeserver).root / "console.log",
            label=f"the audit bot of {self._homeserver}",
            pass_fds=(fd,),
        )

    async def wait_ready(self, process: asyncio.subprocess.Process) -> str | None:
        """Ready once it serves: Synapse can then deliver to it, even before it registered."""

        async def serving() -> str | None:
            health = await bot_health(self._port)
            return None if health is None else ""

        return await processes.poll_until(serving, process, timeout=60)

    async def terminate(self, process: asyncio.subprocess.Process) -> None:
        await processes.terminate(process, grace=10)

    def log_tail(self) -> str:
        files = self._layout.audit(self._homeserver)
        return processes.tails([files.root / "console.log", files.log_file])

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
