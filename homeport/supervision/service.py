"""What the supervisor needs of a service: start, readiness, stop, logs, restart policy.

Synapse (`homeport.homeserver.process`) and the admin website
(`homeport.admin.service`, an `homeport.supervision.https_child`) are services;
each later capability that runs code of its own is one more, registered in
`homeport.runtime.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RestartPolicy:
    """How a service that exits by itself is brought back.

    A crash waits the next step of `backoff`; a service that ran for
    `stable_after` seconds starts the steps again. A service that exits
    `max_failed_first_starts` times before it was ever ready is a broken
    configuration: `up` then stops everything and says why.
    """

    backoff: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    stable_after: float = 60.0
    max_failed_first_starts: int = 3

    def delay(self, crashes_in_row: int) -> float:
        return self.backoff[min(crashes_in_row, len(self.backoff)) - 1]


class Running(Protocol):
    """One run of a service: a child process (`asyncio.subprocess.Process`), or a service
    running inside the shared host process (`homeport.supervision.host.HostedRun`)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


class Service(Protocol):
    """One supervised process of the deployment."""

    @property
    def name(self) -> str:
        """Unique in the deployment: `homeport stop NAME`, the `services` map of status."""
        ...

    @property
    def kind(self) -> str:
        """What it is, in words a person reads: "homeserver", "admin website"."""
        ...

    @property
    def url(self) -> str | None: ...

    @property
    def restart(self) -> RestartPolicy: ...

    @property
    def after(self) -> tuple[str, ...]:
        """Services whose start-up comes first (ready, failed or held stopped), so that
        a service that needs them does not slow them down while they start."""
        ...

    def prepare(self) -> None:
        """Claim what it needs before anything starts (a port); raise HomeportError if taken."""
        ...

    async def spawn(self) -> Running: ...

    async def wait_ready(self, process: Running) -> str | None:
        """Once it serves: a detail worth showing (a version), or "" ; None if it never did."""
        ...

    async def terminate(self, process: Running) -> None: ...

    def log_tail(self) -> str: ...

    def close(self) -> None:
        """Release what `prepare` claimed, after the last process has exited."""
        ...
