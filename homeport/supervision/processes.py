"""Child processes of `homeport up`: started in their own group, never orphaned.

Every supervised service runs as a process of its own, so that code which
blocks or crashes cannot take `up` or its siblings with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from homeport.supervision.service import Running

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: if Homeport is killed, the child gets SIGTERM too.

    Together with a process group of its own (so that Ctrl-C reaches only
    Homeport, which then stops its children in order), no child is ever orphaned.
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def spawn(
    command: list[str],
    cwd: Path,
    console_log: Path,
    label: str,
    pass_fds: tuple[int, ...] = (),
    niceness: int = 0,
) -> asyncio.subprocess.Process:
    """Start `command` with stdout and stderr appended to `console_log`.

    A positive `niceness` lets the child yield the CPU to the others when the
    machine is busy (the website to the homeservers).
    """

    def before_exec() -> None:
        _die_with_parent()
        if niceness:
            os.nice(niceness)

    console_log.parent.mkdir(parents=True, exist_ok=True)
    with console_log.open("ab") as console:
        console.write(f"--- homeport starting {label} at {time.strftime('%F %T')}\n".encode())
        console.flush()
        return await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=console,
            stderr=console,
            start_new_session=True,
            pass_fds=pass_fds,
            preexec_fn=before_exec,
        )


async def terminate(process: Running, grace: float = 30.0) -> int:
    """SIGTERM, then SIGKILL if the process has not exited after `grace` seconds."""
    assert isinstance(process, asyncio.subprocess.Process), "a child process of `up`"
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


def tail(path: Path, lines: int) -> list[str]:
    if not path.exists():
        return []
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        return [line.rstrip("\n") for line in deque(handle, maxlen=lines)]


def tails(paths: list[Path], lines: int = 15) -> str:
    """The last lines of each file, headed by its path (where start-up tracebacks land)."""
    parts = []
    for path in paths:
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


async def poll_until(
    probe: Callable[[], Awaitable[str | None]],
    process: Running | None,
    timeout: float,
) -> str | None:
    """Call the async `probe` with growing pauses until it answers (not None), the
    process exits, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while time.monotonic() < deadline:
        if process is not None and process.returncode is not None:
            return None
        answer = await probe()
        if answer is not None:
            return answer
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    return None
