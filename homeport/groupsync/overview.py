"""What `homeport groupsync status` and the website's Group sync page show.

Mappings from the file, runs and actions from the store, and the running
service's own view (its /health) for the next reconcile and the directory.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine

from homeport.config.deployment import Deployment
from homeport.config.groupsync import SpaceMapping
from homeport.groupsync.history import ActionRecord, GroupSyncHistory, RunRecord
from homeport.supervision.loopback import loopback_health


@dataclass(frozen=True)
class MappingRow:
    alias: str
    name: str
    group: str
    parent: str | None
    rooms: tuple[str, ...]
    power_levels: dict[str, int]


@dataclass
class Overview:
    homeserver: str
    server_name: str
    interval: str
    mappings: list[MappingRow]
    runs: list[RunRecord]
    recent: list[ActionRecord]
    errors: list[ActionRecord]
    service: dict[str, Any] | None = None  # the running service's /health; None: not running
    notes: list[str] = field(default_factory=list)

    @property
    def last_run(self) -> RunRecord | None:
        return self.runs[0] if self.runs else None

    @staticmethod
    def when(ts: int | None) -> str:
        if ts is None:
            return "never"
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts / 1000))

    def last_run_text(self) -> str:
        run = self.last_run
        if run is None:
            return "never"
        text = f"{self.when(run.finished_ts or run.started_ts)} ({run.trigger}, {run.outcome}"
        text += f", {run.applied} applied, {run.failed} failed)"
        return text + (f": {run.detail}" if run.detail else "")

    def next_run_text(self) -> str:
        if self.service is None:
            return "not running (`homeport up` runs it)"
        next_ts = self.service.get("next_full_ts")
        return self.when(next_ts if isinstance(next_ts, int) else None)

    def as_json(self) -> dict[str, Any]:
        return {
            "homeserver": self.homeserver,
            "server_name": self.server_name,
            "interval": self.interval,
            "mappings": [asdict(row) for row in self.mappings],
            "service": self.service,
            "runs": [asdict(run) for run in self.runs],
            "recent": [asdict(action) for action in self.recent],
            "errors": [asdict(action) for action in self.errors],
        }


def mapping_rows(spaces: list[SpaceMapping], parent: str | None = None) -> list[MappingRow]:
    rows: list[MappingRow] = []
    for space in spaces:
        rows.append(
            MappingRow(
                space.alias,
                space.name,
                str(space.group),
                parent,
                tuple(space.rooms),
                space.power_levels,
            )
        )
        rows += mapping_rows(space.subspaces, space.alias)
    return rows


async def overview(deployment: Deployment, engine: Engine, limit: int = 20) -> Overview:
    sync = deployment.group_sync
    assert sync is not None
    history = GroupSyncHistory(engine, sync.homeserver)

    def stored() -> tuple[list[RunRecord], list[ActionRecord], list[ActionRecord]]:
        return history.runs(limit), history.actions(limit), history.actions(limit, failed_only=True)

    (runs, recent, errors), answer = await asyncio.gather(
        asyncio.to_thread(stored), loopback_health(sync.port)
    )
    return Overview(
        homeserver=sync.homeserver,
        server_name=deployment.homeservers[sync.homeserver].server_name,
        interval=sync.interval,
        mappings=mapping_rows(sync.spaces),
        runs=runs,
        recent=recent,
        errors=errors,
        service=None if answer is None else answer[1],
    )
