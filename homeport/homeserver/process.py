"""One Synapse homeserver as a supervised service: start, readiness over TLS, stop, logs."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from homeport.config.homeserver import Homeserver
from homeport.homeserver.first_start import extra_config_files
from homeport.layout import HomeserverLayout
from homeport.supervision import processes
from homeport.supervision.service import RestartPolicy, Running


def synapse_command(files: HomeserverLayout, extra_configs: Sequence[Path] = ()) -> list[str]:
    """Synapse's command line; `extra_configs` are loaded after `homeserver.yaml`."""
    configs = [
        arg for path in (files.config_file, *extra_configs) for arg in ("--config-path", str(path))
    ]
    return [sys.executable, "-m", "synapse.app.homeserver", *configs, "--no-secrets-in-config"]


async def probe(hs: Homeserver, ssl_context: ssl.SSLContext, timeout: float = 3.0) -> str | None:
    """The Synapse version if its own listener answers over verified TLS, else None."""
    import httpx  # once `up` has started Synapse: its imports overlap Synapse's start

    from homeport.synapse.api import SynapseApiError, SynapseClient

    try:
        async with SynapseClient(
            hs.local_url, ssl_context, timeout=timeout, tls_name=hs.tls_name
        ) as client:
            return await client.federation_version()
    except (httpx.HTTPError, SynapseApiError, OSError, KeyError):
        return None


async def wait_ready(
    hs: Homeserver,
    ssl_context: ssl.SSLContext,
    process: Running | None = None,
    timeout: float = 180.0,
) -> str | None:
    """Poll until Synapse answers; None if it exits first or `timeout` passes."""
    return await processes.poll_until(lambda: probe(hs, ssl_context), process, timeout)


class SynapseService:
    """A homeserver of the deployment, ready once its federation port answers over TLS."""

    kind = "homeserver"
    restart = RestartPolicy()
    after: tuple[str, ...] = ()

    def __init__(
        self, name: str, homeserver: Homeserver, files: HomeserverLayout, ssl: ssl.SSLContext
    ) -> None:
        self.name = name
        self._homeserver = homeserver
        self._files = files
        self._ssl = ssl

    @property
    def url(self) -> str:
        return self._homeserver.base_url

    def prepare(self) -> None:
        """Its port was checked by the preflight; Synapse binds it itself."""

    async def spawn(self) -> Running:
        extra = await asyncio.to_thread(extra_config_files, self._homeserver, self._files)
        return await processes.spawn(
            synapse_command(self._files, extra),
            cwd=self._files.root,
            console_log=self._files.console_log_file,
            label="synapse",
        )

    async def wait_ready(self, process: Running) -> str | None:
        return await wait_ready(self._homeserver, self._ssl, process, timeout=3600)

    async def terminate(self, process: Running) -> None:
        await processes.terminate(process)

    def log_tail(self) -> str:
        """Synapse's log and its console (where start-up tracebacks land)."""
        return processes.tails([self._files.log_file, self._files.console_log_file])

    def close(self) -> None:
        pass
