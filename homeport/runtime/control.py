"""Steering a running `homeport up` from another process: hold, release, wait.

`stop NAME` holds a service (it stops and stays stopped, across a restart of
`up` too), `start NAME` releases it; `up` learns of both through `held.json`
and SIGUSR1, and publishes each service's state in `state.json`, which the
waits here read.
"""

from __future__ import annotations

import time
from pathlib import Path

from homeport.errors import HomeportError, NotRunningError
from homeport.layout import DeploymentLayout
from homeport.supervision.state import RunLock, read_state, set_held, wake


class Control:
    """The control side of one running deployment."""

    def __init__(self, layout: DeploymentLayout, config_path: Path) -> None:
        self.layout = layout
        self._config_path = config_path
        self.pid = self._running_pid()

    def _running_pid(self) -> int:
        layout = self.layout
        pid = RunLock(layout).holder() if layout.data_dir.exists() else None
        if pid is None or pid <= 0:
            raise NotRunningError(
                f"this deployment is not running; start it with "
                f"`homeport up -c {self._config_path}`"
            )
        return pid

    def services(self) -> list[str]:
        """The services the running `up` supervises."""
        run_state = read_state(self.layout)
        return list(run_state["services"]) if run_state else []

    def state_of(self, name: str) -> str | None:
        run_state = read_state(self.layout)
        entry = run_state["services"].get(name) if run_state else None
        return entry["state"] if entry else None

    def url_of(self, name: str) -> str | None:
        """Where service `name` answers, as the running `up` publishes it."""
        run_state = read_state(self.layout)
        entry = run_state["services"].get(name) if run_state else None
        return entry["url"] if entry else None

    def wait_for_state(self, name: str, wanted: set[str], timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        state = self.state_of(name)
        while state not in wanted and time.monotonic() < deadline:
            time.sleep(0.2)
            state = self.state_of(name)
        return state

    def hold(self, name: str, timeout: float = 60) -> None:
        """Ask `up` to stop service `name` and keep it stopped; return once it has."""
        set_held(self.layout, name, True)
        wake(self.pid)
        if self.wait_for_state(name, {"stopped"}, timeout) != "stopped":
            raise HomeportError(
                f"{name} did not stop within {timeout:g} s; see {self.layout.supervisor_log}"
            )

    def release(self, name: str) -> None:
        """Let `up` start service `name` again (no waiting)."""
        set_held(self.layout, name, False)
        wake(self.pid)

    def hold_homeserver(self, name: str, workers: list[str]) -> None:
        """A homeserver and its workers: the workers first, so none outlives its main."""
        for worker in workers:
            self.hold(worker)
        self.hold(name)

    def release_homeserver(self, name: str, workers: list[str], log_file: Path) -> None:
        """Its main process, and once that is ready, its workers (each waited for)."""
        self.release(name)
        self.wait_ready(name, log_file)
        for worker in workers:
            self.release(worker)
        for worker in workers:
            self.wait_ready(worker, log_file, timeout=600)

    def wait_ready(self, name: str, log_file: Path, timeout: float = 180) -> None:
        state = self.wait_for_state(name, {"ready", "failed"}, timeout)
        if state != "ready":
            raise HomeportError(f"{name} is not ready (state: {state}); see {log_file}")
