"""The supervisor's restart schedule, with real processes that crash on cue.

A service here is a real Python process that lives as long as the test
says, then exits with an error. The waits between its crashes and its next
start must follow the restart policy: each at least its step (a busy machine
only makes them longer), the steps growing, and back to the first step after
a run longer than `stable_after`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from homeport.layout import DeploymentLayout
from homeport.supervision.service import RestartPolicy
from homeport.supervision.state import ServiceState
from homeport.supervision.supervisor import StartupFailed, Supervisor

POLICY = RestartPolicy(backoff=(0.3, 0.6, 1.2), stable_after=1.0, max_failed_first_starts=3)


@dataclass
class Crasher:
    """A process that runs for the next of `lifetimes`, then exits with status 3."""

    lifetimes: list[float]
    name: str = "crasher"
    kind: str = "test process"
    url: str | None = None
    restart: RestartPolicy = POLICY
    after: tuple[str, ...] = ()
    started: list[float] = field(default_factory=list)
    exited: list[float] = field(default_factory=list)

    def prepare(self) -> None:
        pass

    async def spawn(self) -> asyncio.subprocess.Process:
        lifetime = (
            self.lifetimes[len(self.started)] if len(self.started) < len(self.lifetimes) else 60
        )
        self.started.append(time.monotonic())
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", f"import time, sys; time.sleep({lifetime}); sys.exit(3)"
        )

    async def wait_ready(self, process: asyncio.subprocess.Process) -> str | None:
        return ""

    async def terminate(self, process: asyncio.subprocess.Process) -> None:
        process.kill()
        await process.wait()

    def log_tail(self) -> str:
        self.exited.append(time.monotonic())
        return "exited on cue"

    def close(self) -> None:
        pass


@dataclass
class Recorder:
    deaths: list[tuple[str, int, float]] = field(default_factory=list)

    def state_changed(self, name: str, state: ServiceState) -> None:
        pass

    def died(self, name: str, exit_code: int, log_tail: str, restart_in: float) -> None:
        self.deaths.append((name, exit_code, restart_in))


async def test_crashes_wait_each_step_and_a_stable_run_starts_again(tmp_path: Path) -> None:
    # Three quick crashes, one run longer than stable_after, then two quick ones.
    crasher = Crasher(lifetimes=[0.2, 0.2, 0.2, 1.5, 0.2, 0.2])
    reporter = Recorder()
    supervisor = Supervisor([crasher], DeploymentLayout(tmp_path), reporter)
    task = asyncio.create_task(supervisor.run())
    deadline = time.monotonic() + 60
    while len(crasher.started) < 7:
        assert time.monotonic() < deadline, crasher.started
        assert not task.done(), task
        await asyncio.sleep(0.05)
    supervisor.request_shutdown()
    await asyncio.wait_for(task, 30)

    steps = [delay for _, _, delay in reporter.deaths[:6]]
    assert steps == [0.3, 0.6, 1.2, 0.3, 0.6, 1.2]
    assert all(code == 3 for _, code, _ in reporter.deaths)
    # Each start came no sooner than its step after the crash before it.
    for crash, restart, step in zip(crasher.exited, crasher.started[1:], steps, strict=False):
        assert restart - crash >= step * 0.95, (restart - crash, step)
    assert supervisor.states["crasher"]["restarts"] >= 6


async def test_a_service_that_never_becomes_ready_stops_everything(tmp_path: Path) -> None:
    class NeverReady(Crasher):
        async def wait_ready(self, process: asyncio.subprocess.Process) -> str | None:
            await process.wait()
            return None

    service = NeverReady(lifetimes=[0.1, 0.1, 0.1, 0.1])
    supervisor = Supervisor([service], DeploymentLayout(tmp_path), Recorder())
    with pytest.raises(StartupFailed, match="exited 3 times before it was ready"):
        await asyncio.wait_for(supervisor.run(), 30)
    assert len(service.started) == 3
    assert supervisor.states["crasher"]["state"] == "failed"
