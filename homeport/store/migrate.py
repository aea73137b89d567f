"""Bringing the store's schema up to date with Alembic: `homeport up`, `homeport store migrate`.

Migrations are written by hand, one file per step in `migrations/versions/`;
each `migrate` applies the missing ones in one transaction. A store already at the
schema this code reads is left alone, and an empty one gets that schema at once
(`schema.metadata`, stamped with its revision: Alembic's recipe for a new database,
the two held equal by tests/store/test_store.py), without loading Alembic, whose import
costs `homeport up` more than a tenth of a second before the first homeserver starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from homeport.store.database import VERSION_TABLE, StoreError, recorded_revision, where
from homeport.store.schema import SCHEMA_REVISION, metadata

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Migration:
    before: str | None  # None: an empty store
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


LOCK_KEY = 0x686F6D65706F7274  # "homeport": one key for the store's migrations


def head_revision() -> str:
    """The newest migration's revision."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the store has no migrations"
    return head


def migrate(engine: Engine, target: str = "head") -> Migration:
    """Apply every migration the store lacks, in one transaction.

    On PostgreSQL the transaction first takes an advisory lock, so that
    services starting together (pods of a cluster) migrate one after the
    other: the second finds the schema current and changes nothing.
    """
    latest = target in ("head", SCHEMA_REVISION)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            before = recorded_revision(connection)
            if latest and before == SCHEMA_REVISION:
                return Migration(before, before)
            if latest and before is None and not inspect(connection).get_table_names():
                _create_latest(connection)
            else:
                _upgrade(connection, target)
            after = recorded_revision(connection)
    except (SQLAlchemyError, _AlembicRefused) as error:
        raise StoreError(f"cannot migrate Homeport's store at {where(engine)}: {error}") from error
    assert after is not None
    return Migration(before, after)


class _AlembicRefused(Exception):
    """Alembic's own refusal (an unknown revision), without importing Alembic to catch it."""


def _create_latest(connection: Connection) -> None:
    """An empty store: the latest schema at once, stamped as Alembic would."""
    metadata.create_all(connection)
    # Alembic's own version table, as `alembic stamp` makes it.
    version = Table(
        VERSION_TABLE,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
    )
    version.create(connection)
    connection.execute(version.insert().values(version_num=SCHEMA_REVISION))


def _upgrade(connection: Connection, target: str) -> None:
    from alembic import command
    from alembic.util.exc import CommandError

    config = _config()
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, target)
    except CommandError as error:
        raise _AlembicRefused(str(error)) from error
