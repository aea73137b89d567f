"""Debian's nginx, run by a test with the configuration `homeport render --target nginx` wrote.

Only the main file is the test's (pid, logs and temporary folders in the test's
directory); everything that serves the deployment is Homeport's `homeport.conf`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from homeport.targets.nginx import main_config as nginx_main_config

NGINX = Path("/usr/sbin/nginx")


def main_config(directory: Path, include: Path) -> Path:
    """The main file around Homeport's include, as `up` writes it for the nginx it runs."""
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "temp" / folder).mkdir(parents=True, exist_ok=True)
    path = directory / "nginx.conf"
    path.write_text(nginx_main_config(directory, include, as_root=os.geteuid() == 0))
    return path


def check_config(config: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t`: nginx itself reads and checks every file and certificate."""
    return subprocess.run(
        [str(NGINX), "-t", "-c", str(config), "-p", str(config.parent)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def running_nginx(config: Path, address: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """nginx in the foreground for the block's duration."""
    log = (config.parent / "nginx.out").open("ab")
    process = subprocess.Popen(
        [str(NGINX), "-c", str(config), "-p", str(config.parent), "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not _accepts(address, port):
            if process.poll() is not None or time.monotonic() > deadline:
                errors = (config.parent / "error.log").read_text(errors="replace")
                raise AssertionError(f"nginx did not start on {address}:{port}:\n{errors}")
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
