"""Opening Homeport's store and bringing its schema up to date.

The schema is current when the store's recorded revision is the newest
migration. `open_store` refuses a store that is behind (run
`homeport store migrate`, which `homeport up` does itself) or ahead (a newer
Homeport wrote it), so no code ever reads tables it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from homeport.config.deployment import Deployment
from homeport.config.types import parse_postgres_url
from homeport.errors import HomeportError
from homeport.files import ensure_dir
from homeport.layout import DeploymentLayout

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "homeport_schema_version"


class StoreError(HomeportError):
    """Homeport's store cannot be opened, or its schema is not the one this code knows."""


@dataclass(frozen=True)
class Migration:
    before: str | None  # None: an empty store
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def store_url(deployment: Deployment) -> URL:
    if deployment.store.database == "sqlite":
        path = DeploymentLayout(deployment.data_dir).store_database
        return URL.create("sqlite", database=str(path))
    url = parse_postgres_url(deployment.store.database)
    return URL.create(
        "postgresql+psycopg2",
        username=url.user,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
    )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL lets the website read while verify writes; SQLite checks foreign keys only if asked."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_store_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        ensure_dir(Path(url.database).parent)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, "the store has no migrations"
    return head


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def migrate(engine: Engine, target: str = "head") -> Migration:
    """Apply every migration the store lacks, in one transaction."""
    try:
        with engine.begin() as connection:
            before = current_revision(connection)
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, target)
            after = current_revision(connection)
    except (SQLAlchemyError, CommandError) as error:
        raise StoreError(f"cannot migrate Homeport's store at {_where(engine)}: {error}") from error
    assert after is not None
    return Migration(before, after)


def open_store(deployment: Deployment) -> Engine:
    """The store's engine, once its schema is known to be the one this code reads."""
    engine = create_store_engine(store_url(deployment))
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
    except SQLAlchemyError as error:
        engine.dispose()
        raise StoreError(f"cannot open Homeport's store at {_where(engine)}: {error}") from error
    head = head_revision()
    if revision != head:
        engine.dispose()
        raise StoreError(
            f"Homeport's store at {_where(engine)} has schema {revision or 'none'}, this "
            f"Homeport needs {head}: run `homeport store migrate` (`homeport up` does it too)"
        )
    return engine
