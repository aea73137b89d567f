"""One Synapse worker as a supervised service, beside its homeserver's main process.

It starts once the main process is ready (which migrates the database
first) and is ready once its listener answers `/health`: over verified TLS
where it serves the proxy's requests, over plain HTTP on loopback for the
replication and health-only listeners. A worker that dies is restarted like
a homeserver.
"""

from __future__ import annotations

import ssl
import sys

from homeport.config.homeserver import Homeserver
from homeport.config.workers import WorkerSpec
from homeport.homeserver.workers import LOOPBACK
from homeport.layout import HomeserverLayout
from homeport.supervision import processes
from homeport.supervision.service import RestartPolicy, Running


def worker_command(files: HomeserverLayout, spec: WorkerSpec) -> list[str]:
    """Synapse reads the shared file, then the worker's own over it."""
    return [
        sys.executable,
        "-m",
        "synapse.app.generic_worker",
        "--config-path",
        str(files.config_file),
        "--config-path",
        str(files.worker_config_file(spec.name)),
        "--no-secrets-in-config",
    ]


def service_name(homeserver: str, spec: WorkerSpec) -> str:
    """Unique in the deployment: `homeport stop internal-generic-1`."""
    return f"{homeserver}-{spec.name}"


async def worker_health(
    hs: Homeserver, spec: WorkerSpec, ssl_context: ssl.SSLContext, timeout: float = 3.0
) -> str | None:
    """ "" once the worker answers /health on its listener, else None."""
    import httpx

    from homeport.synapse.api import tls_named_http

    if spec.serves_http:
        base = f"https://{LOOPBACK}:{spec.port}"
        client = tls_named_http(base, ssl_context, hs.tls_name, timeout=timeout)
    else:
        client = httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{spec.port}", timeout=timeout)
    try:
        async with client:
            response = await client.get("/health")
    except (httpx.HTTPError, OSError):
        return None
    return "" if response.status_code == 200 else None


class WorkerService:
    """A worker of homeserver `homeserver`."""

    kind = "Synapse worker"
    restart = RestartPolicy()

    def __init__(
        self,
        homeserver: str,
        hs: Homeserver,
        spec: WorkerSpec,
        files: HomeserverLayout,
        ssl_context: ssl.SSLContext,
    ) -> None:
        self.name = service_name(homeserver, spec)
        self.after = (homeserver,)
        self._hs = hs
        self._spec = spec
        self._files = files
        self._ssl = ssl_context

    @property
    def url(self) -> str | None:
        scheme = "https" if self._spec.serves_http else "http"
        return f"{scheme}://{LOOPBACK}:{self._spec.port}"

    def prepare(self) -> None:
        """Its port was checked with the file; Synapse binds it itself."""

    async def spawn(self) -> Running:
        return await processes.spawn(
            worker_command(self._files, self._spec),
            cwd=self._files.root,
            console_log=self._files.worker_console_log_file(self._spec.name),
            label=f"synapse worker {self.name}",
        )

    async def wait_ready(self, process: Running) -> str | None:
        return await processes.poll_until(
            lambda: worker_health(self._hs, self._spec, self._ssl), process, timeout=600
        )

    async def terminate(self, process: Running) -> None:
        await processes.terminate(process)

    def log_tail(self) -> str:
        return processes.tails(
            [
                self._files.worker_log_file(self._spec.name),
                self._files.worker_console_log_file(self._spec.name),
            ]
        )

    def close(self) -> None:
        pass
