"""Bringing the store's schema up to date with Alembic: `homeport up`, `homeport store migrate`.

Migrations are written by hand, one file per step in `migrations/versions/`;
each `migrate` applies the missing ones in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from homeport.store.database import StoreError, recorded_revision, where

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Migration:
    before: str | None  # None: an empty store
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


LOCK_KEY = 0x686F6D65706F7274  # "homeport": one key for the store's migrations


def head_revision() -> str:
    """The newest migration's revision."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the store has no migrations"
    return head


def migrate(engine: Engine, target: str = "head") -> Migration:
    """Apply every migration the store lacks, in one transaction.

    On PostgreSQL the transaction first takes an advisory lock, so that
    services starting together (pods of a cluster) migrate one after the
    other: the second finds the schema current and changes nothing.
    """
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            before = recorded_revision(connection)
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, target)
            after = recorded_revision(connection)
    except (SQLAlchemyError, CommandError) as error:
        raise StoreError(f"cannot migrate Homeport's store at {where(engine)}: {error}") from error
    assert after is not None
    return Migration(before, after)
