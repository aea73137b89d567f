"""The result of `homeport verify`: one check per (viewer, target, surface).

Saved to and loaded from Homeport's store by the code that defines it, so
the admin website reads exactly what verify wrote.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from homeport.store.schema import verify_checks, verify_runs


@dataclass(frozen=True)
class Check:
    viewer: str
    target: str
    surface: str
    expected: str
    observed: str
    ok: bool
    detail: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Check:
        return cls(
            viewer=str(data["viewer"]),
            target=str(data["target"]),
            surface=str(data["surface"]),
            expected=str(data["expected"]),
            observed=str(data["observed"]),
            ok=bool(data["ok"]),
            detail=str(data.get("detail", "")),
        )


@dataclass(frozen=True)
class Report:
    checks: list[Check]
    finished_at: float | None = None  # seconds since the epoch, once the run has ended

    @property
    def mismatches(self) -> int:
        return sum(not check.ok for check in self.checks)

    def between(self, a: str, b: str) -> list[Check]:
        """The checks of both directions between homeservers `a` and `b`."""
        return [c for c in self.checks if {c.viewer, c.target} == {a, b}]

    def as_json(self) -> dict[str, Any]:
        """The documented `homeport verify --json` shape."""
        return {"checks": [asdict(c) for c in self.checks], "mismatches": self.mismatches}


KEEP_RUNS = 100  # older reports are pruned: verify in a loop cannot fill the store


def save_report(engine: Engine, report: Report) -> int:
    """Store a finished run with its checks; returns its ID."""
    finished = report.finished_at if report.finished_at is not None else time.time()
    with engine.begin() as connection:
        inserted = connection.execute(
            insert(verify_runs).values(
                finished_ts=int(finished * 1000), mismatches=report.mismatches
            )
        )
        key = inserted.inserted_primary_key
        assert key is not None
        run_id = int(key[0])
        if report.checks:
            connection.execute(
                insert(verify_checks),
                [
                    {"run_id": run_id, "position": position, **asdict(check)}
                    for position, check in enumerate(report.checks)
                ],
            )
        stale = select(verify_runs.c.id).order_by(verify_runs.c.id.desc()).offset(KEEP_RUNS)
        old = [row.id for row in connection.execute(stale)]
        if old:
            connection.execute(delete(verify_checks).where(verify_checks.c.run_id.in_(old)))
            connection.execute(delete(verify_runs).where(verify_runs.c.id.in_(old)))
    return run_id


def latest_report(engine: Engine) -> Report | None:
    """The newest stored run, or None before verify has ever run."""
    with engine.connect() as connection:
        run = connection.execute(
            select(verify_runs).order_by(verify_runs.c.id.desc()).limit(1)
        ).first()
        if run is None:
            return None
        rows = connection.execute(
            select(verify_checks)
            .where(verify_checks.c.run_id == run.id)
            .order_by(verify_checks.c.position)
        ).mappings()
        checks = [Check.from_json(dict(row)) for row in rows]
    return Report(checks, finished_at=run.finished_ts / 1000)
