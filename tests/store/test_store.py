"""Homeport's store on SQLite and on this machine's real PostgreSQL: migrations, records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text

from homeport.admin import actions
from homeport.admin.actions import Action, last_action, record_action
from homeport.audit import store as audit
from homeport.audit.records import MARK, record_of, room_change
from homeport.cli import main
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment, load_deployment_text
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


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return list(compare_metadata(context, metadata))


def test_the_migrations_build_the_schema_the_code_reads(engine: Engine) -> None:
    """The history, step by step through Alembic, ends where schema.py stands."""
    assert head_revision() == SCHEMA_REVISION, "schema.py describes the newest migration"
    assert migrate(engine, FIRST).after == FIRST
    migration = migrate(engine)
    assert (migration.before, migration.after) == (FIRST, head_revision())
    assert _differences(engine) == []


def test_an_empty_store_gets_the_latest_schema_at_once(engine: Engine) -> None:
    """What `up` does on a new deployment: schema.py's tables, stamped with the newest
    revision, as the migrations would have left them; then nothing more to do."""
    migration = migrate(engine)
    assert (migration.before, migration.after) == (None, head_revision())
    assert migration.changed
    assert _differences(engine) == []
    assert {"verify_runs", "verify_checks", "admin_actions"} <= set(
        inspect(engine).get_table_names()
    )
    again = migrate(engine)
    assert (again.before, again.after, again.changed) == (head_revision(), head_revision(), False)
    # Stamped as Alembic stamps: a later migration runs from here.
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() == head_revision()


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


def test_services_starting_together_migrate_one_after_the_other(postgres_database: str) -> None:
    """As pods of a cluster do: four at once on an empty PostgreSQL, each succeeds."""
    url = load_deployment_text(
        f"homeservers:\n  solo: {{server_name: 'localhost:8448', port: 8448}}\n"
        f"store: {{database: '{postgres_database}'}}\n",
        Path("/srv/homeport.yaml"),
    )[0]
    engines = [create_store_engine(store_url(url)) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(migrate, engines))
    finally:
        for engine in engines:
            engine.dispose()
    assert sorted(r.changed for r in results) == [False, False, False, True]
    assert {r.after for r in results} == {head_revision()}


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


def _event(n: int, room: str = "!r:hs", **extra: object) -> dict[str, object]:
    return {
        "event_id": f"$e{n}",
        "room_id": room,
        "sender": "@alice:hs" if n % 2 else "@bob:hs",
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": f"message {n} 100%_sure"},
        "origin_server_ts": 1_800_000_000_000 + n,
        **extra,
    }


def test_audit_records_are_kept_once_in_order_and_searched(engine: Engine) -> None:
    migrate(engine)
    bot = "@audit:hs"
    joined = {
        "event_id": "$join",
        "room_id": "!r:hs",
        "sender": bot,
        "type": "m.room.member",
        "state_key": bot,
        "content": {"membership": "join", MARK: {"recording": True, "added_by": "@root:hs"}},
        "origin_server_ts": 1_800_000_000_000,
    }
    events = [joined, *(_event(n) for n in range(1, 6))]
    records = [r for r in (record_of(e, 1) for e in events) if r]
    changes = [c for c in (room_change(e, bot) for e in events) if c]
    assert audit.record(engine, "internal", records[:3], changes) == 3
    # Synapse sends a transaction again (the bot died before answering): nothing twice.
    assert audit.record(engine, "internal", records, changes) == 3
    assert audit.record(engine, "external", records[:1]) == 1  # each homeserver its own

    streamed = list(audit.stream(engine, "internal", audit.Filters()))
    assert [e.event_id for e in streamed] == [e["event_id"] for e in events]
    assert [e.seq for e in streamed] == sorted(e.seq for e in streamed)
    rooms = audit.audited_rooms(engine, "internal")
    assert [(r.room_id, r.added_by, r.events) for r in rooms] == [("!r:hs", "@root:hs", 6)]
    assert audit.count_audited(engine, "internal") == 1

    # Search: text (LIKE wildcards are literal), sender, time; newest first, paged.
    found = audit.search(engine, "internal", audit.Filters(text="3 100%_SURE"), None)
    assert [e.event_id for e in found] == ["$e3"]
    assert audit.search(engine, "internal", audit.Filters(text="100x_sure"), None) == []
    by_bob = audit.search(engine, "internal", audit.Filters(sender="@bob:hs"), None)
    assert [e.event_id for e in by_bob] == ["$e4", "$e2"]
    window = audit.Filters(since_ms=1_800_000_000_002, until_ms=1_800_000_000_004)
    assert [e.event_id for e in audit.search(engine, "internal", window, None)] == ["$e3", "$e2"]
    page = audit.search(engine, "internal", audit.Filters(), None, limit=2)
    older = audit.search(engine, "internal", audit.Filters(), page[-1].seq, limit=2)
    assert [e.event_id for e in page + older] == ["$e5", "$e4", "$e3", "$e2"]

    # Removing: the bot's leave, by whoever removed it.
    left = {
        **joined,
        "event_id": "$leave",
        "sender": "@root:hs",
        "content": {"membership": "leave"},
    }
    change = room_change(left, bot)
    assert change is not None
    audit.record(engine, "internal", [r for r in [record_of(left, 2)] if r], [change])
    assert audit.audited_rooms(engine, "internal") == []
    assert [(c.change, c.by) for c in audit.room_changes(engine, "internal")] == [
        ("removed", "@root:hs"),
        ("added", "@root:hs"),
    ]


def test_encrypted_records_get_their_plaintext_once(engine: Engine) -> None:
    migrate(engine)
    secret = _event(7, type="m.room.encrypted", content={"algorithm": "m.megolm.v1.aes-sha2"})
    record = record_of(secret, 1)
    assert record is not None
    assert record.encrypted
    audit.record(engine, "internal", [record])
    waiting = audit.undecrypted(engine, "internal")
    assert [e["event_id"] for _, e in waiting] == ["$e7"]
    plain = audit.Decrypted(
        "$e7", "m.room.message", '{"body": "hidden words"}', "hidden words", None, 5
    )
    assert audit.record_decrypted(engine, "internal", [plain, plain]) == 1
    assert audit.undecrypted(engine, "internal") == []
    [found] = audit.search(engine, "internal", audit.Filters(text="hidden"), None)
    assert found.decrypted == {"type": "m.room.message", "content": {"body": "hidden words"}}


def test_an_event_the_database_could_not_hold_as_sent_is_still_recorded(engine: Engine) -> None:
    """A NUL in a body (PostgreSQL text refuses it), an over-long relation ID from a client:
    recorded anyway, so that the events after them are not held up."""
    migrate(engine)
    nul = chr(0)
    events = [
        _event(1, content={"msgtype": "m.text", "body": f"nul {nul} here"}),
        _event(2, content={"body": "long", "m.relates_to": {"event_id": "$" + "x" * 300}}),
        _event(3, type="m.room.topic", state_key=f"a{nul}b", content={"topic": f"t{nul}"}),
        _event(4),
    ]
    records = [r for r in (record_of(e, 1) for e in events) if r]
    assert audit.record(engine, "internal", records) == 4
    stored = {e.event_id: e for e in audit.stream(engine, "internal", audit.Filters())}
    assert stored["$e1"].body == "nul \ufffd here"
    assert stored["$e1"].content["body"] == f"nul {nul} here"  # the content as sent
    assert stored["$e2"].relates_to is None
    assert stored["$e3"].state_key == "a\ufffdb"
    assert stored["$e4"].body == "message 4 100%_sure"


def test_a_revision_alembic_does_not_know_is_refused_saying_where(engine: Engine) -> None:
    with pytest.raises(StoreError, match=r"cannot migrate Homeport's store at .*9999"):
        migrate(engine, "9999")
