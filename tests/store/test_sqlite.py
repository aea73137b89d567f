"""The store's SQLite transactions: real ones, the write lock for writers only.

Against a real SQLite file, with a second plain sqlite3 connection (as another
process would have) that never waits (`timeout=0`), so "database is locked"
shows at once whenever the store holds the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, text

from homeport.store.database import create_store_engine


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite3"


@pytest.fixture
def engine(path: Path) -> Iterator[Engine]:
    engine = create_store_engine(URL.create("sqlite", database=str(path)))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counted (n INTEGER NOT NULL UNIQUE)"))
    yield engine
    engine.dispose()


def other(path: Path) -> sqlite3.Connection:
    """Another writer that gives up at once, instead of waiting for the lock."""
    return sqlite3.connect(path, timeout=0, isolation_level=None)


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM counted")).scalar_one())


def test_wal_durable_commits_and_foreign_keys(engine: Engine) -> None:
    with engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA synchronous").scalar() == 2  # FULL: see docs/audit.md
        assert pragma("PRAGMA foreign_keys").scalar() == 1


def test_a_writer_holds_the_lock_from_its_begin_to_its_commit(engine: Engine, path: Path) -> None:
    second = other(path)
    with engine.begin() as connection:
        connection.execute(text("SELECT count(*) FROM counted"))  # reads first: still locked
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            second.execute("BEGIN IMMEDIATE")
    second.execute("BEGIN IMMEDIATE")  # free once it committed
    second.execute("ROLLBACK")
    second.close()


def test_a_reader_takes_no_lock_and_reads_one_snapshot(engine: Engine, path: Path) -> None:
    second = other(path)
    with engine.connect() as connection:
        before = connection.execute(text("SELECT count(*) FROM counted")).scalar()
        second.execute("BEGIN IMMEDIATE")  # the reader holds no lock: at once
        second.execute("INSERT INTO counted VALUES (1)")
        second.execute("COMMIT")
        again = connection.execute(text("SELECT count(*) FROM counted")).scalar()
        assert (before, again) == (0, 0)  # repeatable within its transaction
    second.close()
    assert count(engine) == 1


def test_a_savepoint_is_part_of_its_transaction(engine: Engine) -> None:
    def fails_after_a_savepoint() -> None:
        with engine.begin() as connection:
            with connection.begin_nested():
                connection.execute(text("INSERT INTO counted VALUES (1)"))
            raise RuntimeError("the transaction fails after its savepoint was released")

    with pytest.raises(RuntimeError):
        fails_after_a_savepoint()
    assert count(engine) == 0


def test_writers_that_read_first_run_one_at_a_time_without_locked_errors(
    engine: Engine,
) -> None:
    """Read, then write what was read: a deferred transaction would fail at its write
    ("database is locked", at once) or write a stale value (the UNIQUE refuses it)."""

    def next_number(_: int) -> None:
        with engine.begin() as connection:
            top = connection.execute(text("SELECT coalesce(max(n), 0) FROM counted")).scalar_one()
            connection.execute(text("INSERT INTO counted VALUES (:n)"), {"n": int(top) + 1})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(next_number, range(200)))
    assert count(engine) == 200
