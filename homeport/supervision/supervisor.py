"""`homeport up`'s heart: start every service, keep it running, stop everything cleanly.

Each service has one keeper task. It starts the service unless an
administrator holds it stopped, waits for it to exit or for a change
(shutdown, `homeport stop`/`start`), and restarts a crashed service with
backoff. A service that crashes before it was ever ready, too often in a
row, is a broken configuration: `up` then stops everything and says why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Sequence
from typing import Protocol

from homeport.errors import HomeportError
from homeport.layout import DeploymentLayout
from homeport.supervision.service import Running, Service
from homeport.supervision.state import ProcessState, RunState, ServiceState, read_held, write_state

log = logging.getLogger("homeport.supervisor")


class Reporter(Protocol):
    """What the supervisor tells the person watching (the command line draws it with Rich)."""

    def state_changed(self, name: str, state: ServiceState) -> None: ...

    def died(self, name: str, exit_code: int, log_tail: str, restart_in: float) -> None: ...


class StartupFailed(HomeportError):
    def __init__(self, service: Service, attempts: int, log_tail: str) -> None:
        super().__init__(
            f"{service.kind} {service.name!r} exited {attempts} times before it was ready; "
            f"everything was stopped. Its last log lines:\n{log_tail}"
        )


class Supervisor:
    def __init__(
        self, services: Sequence[Service], layout: DeploymentLayout, reporter: Reporter
    ) -> None:
        self._services = {service.name: service for service in services}
        self._layout = layout
        self._reporter = reporter
        self._shutdown = asyncio.Event()
        self._changed = {name: asyncio.Event() for name in self._services}
        self._held = read_held(layout)
        self._failure: StartupFailed | None = None
        now = time.time()
        self.states: dict[str, ServiceState] = {
            name: ServiceState(
                kind=service.kind,
                pid=None,
                state="stopped",
                since=now,
                restarts=0,
                detail=None,
                url=service.url,
            )
            for name, service in self._services.items()
        }
        self._run_state = RunState(supervisor_pid=os.getpid(), started_at=now, services=self.states)

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
        self.reload_held()  # a change signalled before this loop listened
        self._publish()
        keepers = [asyncio.create_task(self._keep(service)) for service in self._services.values()]
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
        detail: str | None = None,
    ) -> None:
        entry = self.states[name]
        entry["state"] = state
        entry["pid"] = pid
        entry["since"] = time.time()
        if restarts is not None:
            entry["restarts"] = restarts
        if detail is not None:
            entry["detail"] = detail
        self._publish()
        log.info("service state", extra={"service": name, "state": state, "pid": pid})
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

    async def _mark_ready(self, service: Service, process: Running) -> None:
        detail = await service.wait_ready(process)
        if detail is not None and process.returncode is None:
            self._set(service.name, "ready", process.pid, detail=detail)

    async def _run_once(self, service: Service) -> Running:
        """Start the service and return once it exited or was stopped on request."""
        name = service.name
        process = await service.spawn()
        self._set(name, "starting", process.pid)
        readiness = asyncio.create_task(self._mark_ready(service, process))
        exited = asyncio.create_task(process.wait())
        try:
            while True:
                change = asyncio.create_task(self._changed[name].wait())
                done, _ = await asyncio.wait({exited, change}, return_when=asyncio.FIRST_COMPLETED)
                if exited in done:
                    change.cancel()
                    return process
                self._changed[name].clear()
                if not self._should_run(name):
                    self._set(name, "stopping", process.pid)
                    await service.terminate(process)
                    return process
        finally:
            readiness.cancel()

    def _settled(self, name: str) -> bool:
        state = self.states[name]["state"]
        return state in ("ready", "failed") or (state == "stopped" and name in self._held)

    async def _wait_for_start_of(self, names: tuple[str, ...]) -> None:
        """Until every one of `names` has settled (or everything stops)."""
        while not self._shutdown.is_set() and not all(map(self._settled, names)):
            await asyncio.sleep(0.1)

    async def _keep(self, service: Service) -> None:
        name = service.name
        policy = service.restart
        crashes_in_row = 0
        ever_ready = False
        await self._wait_for_start_of(service.after)
        while not self._shutdown.is_set():
            if not self._should_run(name):
                if self.states[name]["state"] != "stopped":
                    self._set(name, "stopped", None)
                await self._wait_for_change(name)
                continue
            started = time.monotonic()
            process = await self._run_once(service)
            ever_ready = ever_ready or self.states[name]["state"] == "ready"
            if not self._should_run(name):
                self._set(name, "stopped", None)
                continue
            # The service exited by itself: a crash.
            code = process.returncode if process.returncode is not None else -1
            tail = service.log_tail()
            if time.monotonic() - started > policy.stable_after:
                crashes_in_row = 0
            crashes_in_row += 1
            log.warning("service exited", extra={"service": name, "exit_code": code})
            if not ever_ready and crashes_in_row >= policy.max_failed_first_starts:
                self._set(name, "failed", None)
                self._failure = StartupFailed(service, crashes_in_row, tail)
                self.request_shutdown()
                return
            delay = policy.delay(crashes_in_row)
            self._reporter.died(name, code, tail, delay)
            self._set(name, "restarting", None, restarts=self.states[name]["restarts"] + 1)
            await self._wait_for_change(name, timeout=delay)
