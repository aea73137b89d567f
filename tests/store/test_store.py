"""Homeport's store on SQLite and on this machine's real PostgreSQL: migrations, records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text

from homeport.admin import actions
from homeport.admin.actions import Action, last_action, record_action
from homeport.cli import main
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment
from homeport.store.database import (
    VERSION_TABLE,
    StoreError,
    create_store_engine,
    open_store,
    store_url,
)
from homeport.store.migrate import head_revision, migrate
from homeport.store.schema import SCHEMA_REVISION, metadata
from homeport.verify import report as reports
from homeport.verify.report import Check, Report, latest_report, save_report

FIRST = "0001"


def deployment_file(directory: Path, database: str) -> Path:
    config = directory / "homeport.yaml"
    config.write_text(
        "homeservers:\n  solo: {server_name: 'localhost:8448', port: 8448}\n"
        f"store:\n  database: {database}\n"
    )
    return config


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    database = "sqlite"
    if request.param == "postgresql":
        database = request.getfixturevalue("postgres_database")
    return load_deployment(deployment_file(tmp_path, database))[0]


@pytest.fixture
def engine(deployment: Deployment) -> Iterator[Engine]:
    engine = create_store_engine(store_url(deployment))
    yield engine
    engine.dispose()


def report(*oks: bool, at: float | None = None) -> Report:
    # Named against their order, so that a store that sorts them loses it.
    checks = [
        Check("internal", "external", f"surface{9 - i}", "visible", "x", ok, "")
        for i, ok in enumerate(oks)
    ]
    return Report(checks, finished_at=at if at is not None else time.time())


def test_migrate_from_empty_builds_the_schema_the_code_reads(engine: Engine) -> None:
    assert head_revision() == SCHEMA_REVISION, "schema.py describes the newest migration"
    migration = migrate(engine)
    assert (migration.before, migration.after) == (None, head_revision())
    assert migration.changed
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []
    assert {"verify_runs", "verify_checks", "admin_actions"} <= set(
        inspect(engine).get_table_names()
    )
    again = migrate(engine)
    assert (again.before, again.after, again.changed) == (head_revision(), head_revision(), False)


def test_migrate_from_the_previous_schema_keeps_the_data(
    deployment: Deployment, engine: Engine
) -> None:
    assert migrate(engine, FIRST).after == FIRST
    save_report(engine, report(True, False, at=1_800_000_000.0))
    assert "admin_actions" not in inspect(engine).get_table_names()
    with pytest.raises(StoreError, match="homeport store migrate"):
        open_store(deployment)

    migration = migrate(engine)
    assert (migration.before, migration.after) == (FIRST, head_revision())
    kept = latest_report(engine)
    assert kept is not None
    assert kept.finished_at == 1_800_000_000.0
    assert [c.ok for c in kept.checks] == [True, False]
    assert [c.surface for c in kept.checks] == ["surface9", "surface8"]
    assert kept.mismatches == 1
    open_store(deployment).dispose()  # now current


def test_reports_round_trip_and_only_the_newest_are_kept(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(engine)
    assert latest_report(engine) is None
    monkeypatch.setattr(reports, "KEEP_RUNS", 3)
    for n in range(5):
        save_report(engine, report(*(True,) * n, False, at=1_800_000_000.0 + n))
    newest = latest_report(engine)
    assert newest is not None
    assert newest.finished_at == 1_800_000_004.0
    assert newest.checks == report(True, True, True, True, False).checks  # in their order
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM verify_runs")).scalar() == 3
        orphans = connection.execute(
            text(
                "SELECT count(*) FROM verify_checks"
                " WHERE run_id NOT IN (SELECT id FROM verify_runs)"
            )
        ).scalar()
        assert orphans == 0


def test_admin_actions_are_recorded_and_bounded(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(engine)
    monkeypatch.setattr(actions, "KEEP_ACTIONS", 4)
    for n in range(6):
        record_action(
            engine,
            Action(
                1000 + n, "internal", "@root:localhost", "reset_connection", f"s{n % 2}", "done"
            ),
        )
    latest = last_action(engine, "internal", "s1")
    assert latest is not None
    assert latest.ts == 1005
    assert last_action(engine, "external", "s1") is None
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM admin_actions")).scalar() == 4


def test_store_migrate_command(tmp_path: Path) -> None:
    config = deployment_file(tmp_path, "sqlite")
    first = CliRunner().invoke(main, ["store", "migrate", "-c", str(config)])
    assert first.exit_code == 0, first.output
    assert f"schema none → {head_revision()}" in first.output
    second = CliRunner().invoke(main, ["store", "migrate", "-c", str(config)])
    assert second.exit_code == 0
    assert "up to date" in second.output
    assert (tmp_path / "data" / "homeport.db").exists()


def test_an_unreachable_store_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    config = deployment_file(tmp_path, "postgresql://homeport:s3cret@127.0.0.1:1/homeport")
    result = CliRunner().invoke(main, ["store", "migrate", "-c", str(config)])
    assert result.exit_code == 1
    assert "cannot migrate Homeport's store at postgresql+psycopg2://homeport:***@" in result.output
    assert "s3cret" not in result.output
