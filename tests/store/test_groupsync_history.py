"""Group sync's history on SQLite and on this machine's real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment
from homeport.groupsync.history import GroupSyncHistory
from homeport.groupsync.plan import Action, Managed
from homeport.store.database import create_store_engine, store_url
from homeport.store.migrate import migrate
from tests.store.test_store import deployment_file


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    database = "sqlite"
    if request.param == "postgresql":
        database = request.getfixturevalue("postgres_database")
    deployment: Deployment = load_deployment(deployment_file(tmp_path, database))[0]
    engine = create_store_engine(store_url(deployment))
    migrate(engine)
    yield engine
    engine.dispose()


def test_joins_kicks_and_levels_make_the_managed_members(engine: Engine) -> None:
    history = GroupSyncHistory(engine, "internal")
    run = history.start_run("manual", 5)
    join = Action("join", "staff", "@alice:hs", why="group staff")
    history.record(run, join, "!staff", "ok")
    history.record(run, Action("join", "staff", "@bob:hs", why="group staff"), "!staff", "ok")
    history.record(run, Action("set_power", "staff", "@alice:hs", 100), "!staff", "ok")
    history.record(run, join, "!staff", "ok")  # the same join again: one member, level kept
    failed = Action("join", "staff", "@carol:hs", why="group staff")
    history.record(run, failed, "!staff", "failed", "M_FORBIDDEN: nope")
    assert history.managed() == {"!staff": {"@alice:hs": Managed(100), "@bob:hs": Managed(None)}}
    history.record(run, Action("kick", "staff", "@bob:hs"), "!staff", "ok")
    history.record(run, Action("set_power", "staff", "@alice:hs", None), "!staff", "ok")
    assert history.managed() == {"!staff": {"@alice:hs": Managed(None)}}
    history.finish_run(run, "failed", "1 action(s) failed")
    last = history.last_run()
    assert last is not None
    assert (last.outcome, last.applied, last.failed) == ("failed", 6, 1)
    errors = history.actions(failed_only=True)
    assert [(a.user_id, a.error) for a in errors] == [("@carol:hs", "M_FORBIDDEN: nope")]
    # Another homeserver's history is its own.
    assert GroupSyncHistory(engine, "external").managed() == {}


def test_quiet_runs_and_repeated_outages_do_not_grow_the_history(engine: Engine) -> None:
    history = GroupSyncHistory(engine, "internal")
    busy = history.start_run("full", 1)
    history.record(busy, Action("join", "staff", "@alice:hs"), "!staff", "ok")
    history.finish_run(busy, "ok")
    for _ in range(5):
        history.finish_run(history.start_run("full", 0), "ok")
    for _ in range(5):
        history.record_failed_run("full", "directory unavailable", "ldap://x: down")
    runs = history.runs(50)
    assert [(r.outcome, r.planned) for r in runs] == [
        ("directory unavailable", 0),
        ("ok", 0),
        ("ok", 1),
    ]
