"""`homeport up`: start every homeserver, keep it running, stop everything cleanly.

Each homeserver has one keeper task. It starts Synapse unless an
administrator holds it stopped, waits for it to exit or for a change
(shutdown, `homeport stop`/`start`), and restarts a crashed Synapse with
backoff. A homeserver that crashes before it was ever ready, three times in
a row, is a broken configuration: `up` then stops everything and says why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import time
from typing import Protocol

from homeport.config.deployment import Deployment
from homeport.errors import HomeportError
from homeport.layout import DeploymentLayout
from homeport.runstate import HomeserverState, ProcessState, RunState, read_held, write_state
from homeport.synapse import process as synapse_process

RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STABLE_AFTER = 60.0
MAX_FAILED_FIRST_STARTS = 3

log = logging.getLogger("homeport.supervisor")


class Reporter(Protocol):
    """What the supervisor tells the person watching (the CLI draws it with Rich)."""

    def state_changed(self, name: str, state: HomeserverState) -> None: ...

    def died(self, name: str, exit_code: int, log_tail: str, restart_in: float) -> None: ...


class StartupFailed(HomeportError):
    def __init__(self, name: str, log_tail: str) -> None:
        super().__init__(
            f"homeserver {name!r} exited {MAX_FAILED_FIRST_STARTS} times before it was ready; "
            f"everything was stopped. Its last log lines:\n{log_tail}"
        )


class Supervisor:
    def __init__(
        self,
        deployment: Deployment,
        layout: DeploymentLayout,
        ssl_context: ssl.SSLContext,
        reporter: Reporter,
    ) -> None:
        self._deployment = deployment
        self._layout = layout
        self._ssl = ssl_context
        self._reporter = reporter
        self._shutdown = asyncio.Event()
        self._changed = {name: asyncio.Event() for name in deployment.homeservers}
        self._held = read_held(layout)
        self._failure: StartupFailed | None = None
        now = time.time()
        self.states: dict[str, HomeserverState] = {
            name: HomeserverState(
                pid=None, state="stopped", since=now, restarts=0, synapse_version=None
            )
            for name in deployment.homeservers
        }
        self._run_state = RunState(
            supervisor_pid=os.getpid(), started_at=now, homeservers=self.states
        )

    @property
    def held(self) -> set[str]:
        return set(self._held)

    def request_shutdown(self) -> None:
        self._shutdown.set()
        for event in self._changed.values():
            event.set()

    def reload_held(self) -> None:
        self._held = read_held(self._layout)
        for event in self._changed.values():
            event.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_shutdown)
        loop.add_signal_handler(signal.SIGUSR1, self.reload_held)
        self._publish()
        keepers = [asyncio.create_task(self._keep(name)) for name in self._deployment.homeservers]
        try:
            await asyncio.gather(*keepers)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
                loop.remove_signal_handler(sig)
        if self._failure is not None:
            raise self._failure

    def _set(
        self,
        name: str,
        state: ProcessState,
        pid: int | None,
        restarts: int | None = None,
        version: str | None = None,
    ) -> None:
        entry = self.states[name]
        entry["state"] = state
        entry["pid"] = pid
        entry["since"] = time.time()
        if restarts is not None:
            entry["restarts"] = restarts
        if version is not None:
            entry["synapse_version"] = version
        self._publish()
        log.info("homeserver state", extra={"homeserver": name, "state": state, "pid": pid})
        self._reporter.state_changed(name, entry)

    def _publish(self) -> None:
        write_state(self._layout, self._run_state)

    async def _wait_for_change(self, name: str, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self._changed[name].wait(), timeout)
        except TimeoutError:
            return
        self._changed[name].clear()

    def _should_run(self, name: str) -> bool:
        return not self._shutdown.is_set() and name not in self._held

    async def _mark_ready(self, name: str, process: asyncio.subprocess.Process) -> None:
        hs = self._deployment.homeservers[name]
        version = await synapse_process.wait_ready(hs.base_url, self._ssl, process, timeout=3600)
        if version is not None and process.returncode is None:
            self._set(name, "ready", process.pid, version=version)

    async def _keep(self, name: str) -> None:
        files = self._layout.homeserver(name)
        crashes_in_row = 0
        ever_ready = False
        while not self._shutdown.is_set():
            if not self._should_run(name):
                if self.states[name]["state"] != "stopped":
                    self._set(name, "stopped", None)
                await self._wait_for_change(name)
                continue
            process = await synapse_process.spawn(files)
            started = time.monotonic()
            self._set(name, "starting", process.pid)
            readiness = asyncio.create_task(self._mark_ready(name, process))
            exited = asyncio.create_task(process.wait())
            while True:
                change = asyncio.create_task(self._changed[name].wait())
                done, _ = await asyncio.wait({exited, change}, return_when=asyncio.FIRST_COMPLETED)
                if exited in done:
                    change.cancel()
                    break
                self._changed[name].clear()
                if not self._should_run(name):
                    self._set(name, "stopping", process.pid)
                    await synapse_process.terminate(process)
                    break
            readiness.cancel()
            ever_ready = ever_ready or self.states[name]["state"] == "ready"
            if not self._should_run(name):
                self._set(name, "stopped", None)
                continue
            # Synapse exited by itself: a crash.
            code = process.returncode if process.returncode is not None else -1
            tail = synapse_process.log_tail(files)
            if time.monotonic() - started > STABLE_AFTER:
                crashes_in_row = 0
            crashes_in_row += 1
            log.warning("homeserver exited", extra={"homeserver": name, "exit_code": code})
            if not ever_ready and crashes_in_row >= MAX_FAILED_FIRST_STARTS:
                self._set(name, "failed", None)
                self._failure = StartupFailed(name, tail)
                self.request_shutdown()
                return
            delay = RESTART_BACKOFF[min(crashes_in_row, len(RESTART_BACKOFF)) - 1]
            self._reporter.died(name, code, tail, delay)
            self._set(name, "restarting", None, restarts=self.states[name]["restarts"] + 1)
            await self._wait_for_change(name, timeout=delay)
