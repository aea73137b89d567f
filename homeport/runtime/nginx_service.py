"""The nginx `homeport up` runs in front of everything when `proxy.managed` is on.

The same rendering as `homeport render --target nginx`, written into the data
folder with a main file of its own (pid, logs, temporary folders there), and
checked by `nginx -t` before anything starts: a configuration nginx refuses
stops `up` with nginx's words. Debian's nginx, in the foreground, supervised
like every other process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

from homeport.config.deployment import Deployment
from homeport.config.types import PROXY_SERVICE, connect_address
from homeport.errors import HomeportError
from homeport.files import ensure_dir, write_atomic
from homeport.layout import DeploymentLayout
from homeport.supervision import processes
from homeport.supervision.service import RestartPolicy, Running
from homeport.targets.nginx import CONFIG, main_config, render_nginx
from homeport.trust import upstream_trust

MAIN = "nginx.conf"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise HomeportError(
            "proxy.managed is on and nginx is not installed: install it (Debian: apt install "
            "nginx), or set proxy.managed: false and include the rendered file in your own"
        )
    return found


def write_nginx(deployment: Deployment, layout: DeploymentLayout) -> Path:
    """The rendered files and the main file in the data folder; returns the main file."""
    run_dir = layout.nginx_dir
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        ensure_dir(run_dir / "temp" / folder)
    files = render_nginx(deployment, layout, run_dir, upstream_trust(deployment, layout))
    for name, text in files.items():
        write_atomic(run_dir / name, text.encode())
    main = run_dir / MAIN
    write_atomic(main, main_config(run_dir, run_dir / CONFIG, os.geteuid() == 0).encode())
    return main


class NginxService:
    """The reverse proxy: ready once it accepts connections on its port."""

    name = PROXY_SERVICE
    kind = "reverse proxy"
    restart = RestartPolicy()

    def __init__(self, deployment: Deployment, layout: DeploymentLayout) -> None:
        assert deployment.proxy is not None
        self.after = tuple(deployment.homeservers)
        self._deployment = deployment
        self._layout = layout
        self._proxy = deployment.proxy
        self._main: Path | None = None
        self._binary = ""

    @property
    def url(self) -> str | None:
        address = connect_address(self._proxy.address or "0.0.0.0")  # noqa: S104
        host = f"[{address}]" if ":" in address else address
        return f"https://{host}:{self._proxy.port}"

    def prepare(self) -> None:
        """Render and have nginx check it; a refusal stops `up` before anything runs."""
        self._binary = nginx_binary()
        self._main = write_nginx(self._deployment, self._layout)
        checked = subprocess.run(
            [self._binary, "-t", "-c", str(self._main), "-p", str(self._main.parent)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if checked.returncode != 0:
            raise HomeportError(f"nginx refuses the rendered configuration:\n{checked.stderr}")

    async def spawn(self) -> Running:
        assert self._main is not None, "prepare() renders first"
        return await processes.spawn(
            [
                self._binary,
                "-c",
                str(self._main),
                "-p",
                str(self._main.parent),
                "-g",
                "daemon off;",
            ],
            cwd=self._main.parent,
            console_log=self._layout.nginx_dir / "nginx.out",
            label="nginx",
        )

    async def wait_ready(self, process: Running) -> str | None:
        address = connect_address(self._proxy.address or "0.0.0.0")  # noqa: S104

        async def accepting() -> str | None:
            try:
                _, writer = await asyncio.open_connection(address, self._proxy.port)
            except OSError:
                return None
            writer.close()
            return ""

        return await processes.poll_until(accepting, process, timeout=30)

    async def terminate(self, process: Running) -> None:
        await processes.terminate(process)

    def log_tail(self) -> str:
        return processes.tails(
            [self._layout.nginx_dir / "error.log", self._layout.nginx_dir / "nginx.out"]
        )

    def close(self) -> None:
        pass
