"""What a running deployment shares with the commands that inspect or steer it.

`up` holds an exclusive lock on `run/homeport.lock` for its whole life: the
lock, not a pid file, says whether the deployment runs (a crashed `up` can't
leave a stale claim). `up` publishes `run/state.json` (every service's
state); `stop` and `start` write `run/held.json` and wake `up` with SIGUSR1.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from collections.abc import Iterator
from typing import Any, Literal, TypedDict

from homeport.files import ensure_dir, write_atomic
from homeport.layout import DeploymentLayout

ProcessState = Literal["starting", "ready", "restarting", "stopping", "stopped", "failed"]


class ServiceState(TypedDict):
    kind: str
    pid: int | None
    state: ProcessState
    since: float
    restarts: int
    detail: str | None  # what readiness reported, such as Synapse's version
    url: str | None


class RunState(TypedDict):
    supervisor_pid: int
    started_at: float
    services: dict[str, ServiceState]


class RunLock:
    """The exclusive claim of one `homeport up` on a data folder."""

    def __init__(self, layout: DeploymentLayout) -> None:
        self._path = layout.lock_file
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The pid of the `up` that holds the lock, or None. Creates nothing."""
        if not self._path.exists():
            return None
        fd = os.open(self._path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            content = os.pread(fd, 32, 0).decode().strip()
            return int(content) if content.isdigit() else -1
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def acquire(self) -> bool:
        ensure_dir(self._path.parent)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def read_state(layout: DeploymentLayout) -> RunState | None:
    """The running `up`'s published state; None when there is none this Homeport reads
    (none yet, or one written by an older Homeport that is still running)."""
    try:
        data: RunState = json.loads(layout.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("services"), dict) else None


def write_state(layout: DeploymentLayout, state: RunState) -> None:
    write_atomic(layout.state_file, json.dumps(state, indent=2).encode())


@contextlib.contextmanager
def _held_lock(layout: DeploymentLayout) -> Iterator[None]:
    ensure_dir(layout.run_dir)
    fd = os.open(layout.run_dir / "held.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_held(layout: DeploymentLayout) -> set[str]:
    try:
        data: Any = json.loads(layout.held_file.read_text())
    except (FileNotFoundError, ValueError):
        return set()
    return {str(name) for name in data.get("held", [])}


def set_held(layout: DeploymentLayout, name: str, held: bool) -> None:
    with _held_lock(layout):
        names = read_held(layout)
        names = names | {name} if held else names - {name}
        write_atomic(layout.held_file, json.dumps({"held": sorted(names)}).encode())


def wake(pid: int) -> None:
    """Ask the running `up` to re-read held.json."""
    os.kill(pid, signal.SIGUSR1)
