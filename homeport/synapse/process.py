"""One Synapse process: start it, wait until it answers over TLS, stop it, read its log."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import ssl
import sys
import time
from collections import deque
from pathlib import Path

import httpx

from homeport.layout import HomeserverLayout
from homeport.synapse.api import SynapseApiError, SynapseClient

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: if Homeport is killed, Synapse gets SIGTERM too.

    Together with a process group of its own (so that Ctrl-C reaches only
    Homeport, which then stops Synapse in order), no Synapse is ever orphaned.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def synapse_command(files: HomeserverLayout) -> list[str]:
    return [
        sys.executable,
        "-m",
        "synapse.app.homeserver",
        "--config-path",
        str(files.config_file),
        "--no-secrets-in-config",
    ]


async def spawn(files: HomeserverLayout) -> asyncio.subprocess.Process:
    """Start Synapse with stdout and stderr appended to the homeserver's console log."""
    files.log_dir.mkdir(parents=True, exist_ok=True)
    with files.console_log_file.open("ab") as console:
        console.write(f"--- homeport starting synapse at {time.strftime('%F %T')}\n".encode())
        console.flush()
        return await asyncio.create_subprocess_exec(
            *synapse_command(files),
            cwd=files.root,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=console,
            stderr=console,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


async def terminate(process: asyncio.subprocess.Process, grace: float = 30.0) -> int:
    """SIGTERM, then SIGKILL if Synapse has not exited after `grace` seconds."""
    if process.returncode is not None:
        return process.returncode
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        return await process.wait()


async def probe(base_url: str, ssl_context: ssl.SSLContext, timeout: float = 3.0) -> str | None:
    """The Synapse version if it answers over verified TLS, else None."""
    try:
        async with SynapseClient(base_url, ssl_context, timeout=timeout) as client:
            return await client.federation_version()
    except (httpx.HTTPError, SynapseApiError, OSError, KeyError):
        return None


async def wait_ready(
    base_url: str,
    ssl_context: ssl.SSLContext,
    process: asyncio.subprocess.Process | None = None,
    timeout: float = 180.0,
) -> str | None:
    """Poll until Synapse answers; None if it exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while time.monotonic() < deadline:
        if process is not None and process.returncode is not None:
            return None
        version = await probe(base_url, ssl_context)
        if version:
            return version
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    return None


def tail(path: Path, lines: int) -> list[str]:
    if not path.exists():
        return []
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        return [line.rstrip("\n") for line in deque(handle, maxlen=lines)]


def log_tail(files: HomeserverLayout, lines: int = 15) -> str:
    """The last lines of Synapse's log and console (where start-up tracebacks land)."""
    parts = []
    for path in (files.log_file, files.console_log_file):
        chunk = tail(path, lines)
        if chunk:
            parts.append(f"==> {path} <==\n" + "\n".join(chunk))
    return "\n".join(parts) or "(no log output)"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
