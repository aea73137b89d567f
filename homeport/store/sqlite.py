"""SQLite as Homeport's store uses it: WAL, and transactions SQLAlchemy controls.

Python's sqlite3 driver, in its default (legacy) mode, sends `BEGIN` only
before an INSERT, UPDATE or DELETE: a SAVEPOINT or a SELECT before it runs
outside any transaction, so a savepoint commits on its own and reads are not
repeatable. Here the driver sends nothing (`isolation_level = None`) and the
engine's "begin" event starts each transaction itself (SQLAlchemy's recipe):

- `engine.begin()` (a writer) sends `BEGIN IMMEDIATE`: the write lock is
  taken at the start, waiting up to the busy timeout for it, and held for
  that one transaction. A deferred transaction that read first could not
  wait: its later write fails at once with "database is locked" whenever
  another writer got in between.
- a transaction begun by a statement (`engine.connect()`, then `execute`: a
  reader) sends a plain `BEGIN`: a snapshot for its reads, no write lock. In
  WAL mode readers and the one writer never wait for each other. (So write
  with `engine.begin()`: a write after reads in a reader's transaction
  fails at once whenever another writer holds the lock.)

The two are told apart by SQLAlchemy's "before_execute" event, which fires
before a statement starts a transaction; `tests/store/test_sqlite.py` holds
each behaviour.

`synchronous=FULL`: a commit is on disk before it returns, because the audit
bot acknowledges Synapse's transactions on commit (docs/audit.md says why not
NORMAL).
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Connection, Engine, event

BUSY_TIMEOUT_S = 30  # how long a writer waits for another one's transaction

# Connections about to run a statement outside a transaction: the "begin" that
# follows is one the statement started (a reader), not an `engine.begin()`.
_statement_begins: weakref.WeakSet[Connection] = weakref.WeakSet()


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    """The driver sends no BEGIN of its own; WAL lets readers and a writer work at once;
    SQLite checks foreign keys only if asked."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _before_execute(connection: Connection, *_args: Any) -> None:
    if not connection.in_transaction():
        _statement_begins.add(connection)


def _on_begin(connection: Connection) -> None:
    reader = connection in _statement_begins
    _statement_begins.discard(connection)
    connection.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")
    _statement_begins.discard(connection)  # the BEGIN itself ran outside a transaction


def control_transactions(engine: Engine) -> None:
    """Install the pragmas and the BEGINs above on a SQLite engine."""
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "before_execute", _before_execute)
    event.listen(engine, "begin", _on_begin)
