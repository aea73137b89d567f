"""Group sync's history in Homeport's store: runs, actions, and whom it added where.

The planner reads `managed()` (only people group sync added are ever removed
by it); the executor writes each action with its result as it completes, so a
run cut short still tells what it did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from homeport.groupsync.plan import Action, History, Managed
from homeport.store.schema import groupsync_actions, groupsync_members, groupsync_runs


@dataclass(frozen=True)
class Outcome:
    """What came of one action, as the history keeps it."""

    action: Action
    room_id: str | None
    result: str  # "ok", "failed", "held"
    error: str = ""


@dataclass(frozen=True)
class RunRecord:
    id: int
    trigger: str
    started_ts: int
    finished_ts: int | None
    outcome: str
    planned: int
    applied: int
    failed: int
    detail: str


@dataclass(frozen=True)
class ActionRecord:
    id: int
    run_id: int
    ts: int
    kind: str
    room: str | None
    room_id: str | None
    user_id: str | None
    value: str | None
    why: str
    result: str
    error: str


def now_ms() -> int:
    return int(time.time() * 1000)


def _run(row: Any) -> RunRecord:
    return RunRecord(
        row.id,
        row.trigger,
        row.started_ts,
        row.finished_ts,
        row.outcome,
        row.planned,
        row.applied,
        row.failed,
        row.detail,
    )


class GroupSyncHistory:
    """One homeserver's group sync history."""

    def __init__(self, engine: Engine, homeserver: str) -> None:
        self._engine = engine
        self._homeserver = homeserver

    def managed(self) -> History:
        rows = select(groupsync_members).where(groupsync_members.c.homeserver == self._homeserver)
        history: dict[str, dict[str, Managed]] = {}
        with self._engine.connect() as connection:
            for row in connection.execute(rows):
                history.setdefault(row.room_id, {})[row.user_id] = Managed(row.power_level)
        return history

    def start_run(self, trigger: str, planned: int) -> int:
        with self._engine.begin() as connection:
            result = connection.execute(
                insert(groupsync_runs).values(
                    homeserver=self._homeserver,
                    trigger=trigger,
                    started_ts=now_ms(),
                    outcome="running",
                    planned=planned,
                    applied=0,
                    failed=0,
                    detail="",
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(self, run_id: int, outcome: str, detail: str = "") -> None:
        counts = (
            select(
                func.count().filter(groupsync_actions.c.result == "ok"),
                func.count().filter(groupsync_actions.c.result == "failed"),
            )
            .where(groupsync_actions.c.run_id == run_id)
            .subquery()
        )
        with self._engine.begin() as connection:
            applied, failed = connection.execute(select(counts)).one()
            connection.execute(
                update(groupsync_runs)
                .where(groupsync_runs.c.id == run_id)
                .values(
                    finished_ts=now_ms(),
                    outcome=outcome,
                    applied=applied,
                    failed=failed,
                    detail=detail,
                )
            )
            if outcome == "ok" and applied == 0 and failed == 0:
                # A quiet reconcile every minute: keep only the latest, so the
                # history holds what changed, not a row per minute forever.
                connection.execute(
                    delete(groupsync_runs).where(
                        (groupsync_runs.c.homeserver == self._homeserver)
                        & (groupsync_runs.c.outcome == "ok")
                        & (groupsync_runs.c.planned == 0)
                        & (groupsync_runs.c.id != run_id)
                    )
                )

    def record_failed_run(self, trigger: str, outcome: str, detail: str) -> int:
        """A run that never got to a plan (the directory was down): kept, so it shows.

        The same failure again only moves the last row's end: an outage retried
        every few seconds is one row, not thousands."""
        last = self.last_run()
        if last is not None and (last.outcome, last.detail) == (outcome, detail):
            with self._engine.begin() as connection:
                connection.execute(
                    update(groupsync_runs)
                    .where(groupsync_runs.c.id == last.id)
                    .values(finished_ts=now_ms())
                )
            return last.id
        run_id = self.start_run(trigger, 0)
        self.finish_run(run_id, outcome, detail)
        return run_id

    def record(
        self,
        run_id: int,
        action: Action,
        room_id: str | None,
        result: str,
        error: str = "",
    ) -> None:
        self.record_many(run_id, [Outcome(action, room_id, result, error)])

    def record_many(self, run_id: int, outcomes: list[Outcome]) -> None:
        """Actions' outcomes, in one transaction; a successful join, kick or power change
        also updates whom group sync manages."""
        ts = now_ms()
        with self._engine.begin() as connection:
            if outcomes:
                connection.execute(
                    insert(groupsync_actions),
                    [
                        {
                            "run_id": run_id,
                            "ts": ts,
                            "homeserver": self._homeserver,
                            "kind": o.action.kind,
                            "room": o.action.room,
                            "room_id": o.room_id,
                            "user_id": o.action.user,
                            "value": None if o.action.value is None else str(o.action.value),
                            "why": o.action.why,
                            "result": o.result,
                            "error": o.error[:2000],
                        }
                        for o in outcomes
                    ],
                )
            for outcome in outcomes:
                self._manage(connection, outcome, ts)

    def _manage(self, connection: Connection, outcome: Outcome, ts: int) -> None:
        action, room_id = outcome.action, outcome.room_id
        if outcome.result != "ok" or room_id is None or action.user is None:
            return
        key = (
            (groupsync_members.c.homeserver == self._homeserver)
            & (groupsync_members.c.room_id == room_id)
            & (groupsync_members.c.user_id == action.user)
        )
        if action.kind == "kick":
            connection.execute(delete(groupsync_members).where(key))
        elif action.kind == "join":
            exists = connection.execute(select(groupsync_members.c.user_id).where(key)).first()
            if exists is None:
                connection.execute(
                    insert(groupsync_members).values(
                        homeserver=self._homeserver,
                        room_id=room_id,
                        user_id=action.user,
                        power_level=None,
                        added_ts=ts,
                    )
                )
        elif action.kind == "set_power":
            level = action.value if isinstance(action.value, int) else None
            connection.execute(update(groupsync_members).where(key).values(power_level=level))

    def provisioned(self) -> set[str]:
        """The users group sync created (their accounts are the directory's)."""
        query = (
            select(groupsync_actions.c.user_id)
            .where(groupsync_actions.c.homeserver == self._homeserver)
            .where(groupsync_actions.c.kind == "provision_user")
            .where(groupsync_actions.c.result == "ok")
            .distinct()
        )
        with self._engine.connect() as connection:
            return {str(row[0]) for row in connection.execute(query) if row[0]}

    def runs(self, limit: int = 20) -> list[RunRecord]:
        query = (
            select(groupsync_runs)
            .where(groupsync_runs.c.homeserver == self._homeserver)
            .order_by(groupsync_runs.c.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return [_run(row) for row in connection.execute(query)]

    def last_run(self) -> RunRecord | None:
        query = select(groupsync_runs).where(groupsync_runs.c.homeserver == self._homeserver)
        query = query.order_by(groupsync_runs.c.id.desc()).limit(1)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _run(row)

    def actions(
        self, limit: int = 50, run_id: int | None = None, failed_only: bool = False
    ) -> list[ActionRecord]:
        query = select(groupsync_actions).where(groupsync_actions.c.homeserver == self._homeserver)
        if run_id is not None:
            query = query.where(groupsync_actions.c.run_id == run_id)
        if failed_only:
            query = query.where(groupsync_actions.c.result == "failed")
        query = query.order_by(groupsync_actions.c.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            return [
                ActionRecord(
                    row.id,
                    row.run_id,
                    row.ts,
                    row.kind,
                    row.room,
                    row.room_id,
                    row.user_id,
                    row.value,
                    row.why,
                    row.result,
                    row.error,
                )
                for row in connection.execute(query)
            ]
