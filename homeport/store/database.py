"""Opening Homeport's store: SQLite or PostgreSQL, at the schema this code knows.

`open_store` refuses a store whose recorded revision is not `SCHEMA_REVISION`:
behind (run `homeport store migrate`, which `homeport up` does itself) or
ahead (a newer Homeport wrote it), so no code ever reads tables it does not
know. Migrating lives in `homeport.store.migrate`, which alone loads Alembic.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    column,
    create_engine,
    inspect,
    select,
    table,
)
from sqlalchemy.exc import SQLAlchemyError

from homeport.config.deployment import Deployment
from homeport.config.types import parse_postgres_url
from homeport.errors import HomeportError
from homeport.files import ensure_dir
from homeport.layout import DeploymentLayout
from homeport.store import sqlite
from homeport.store.schema import SCHEMA_REVISION

VERSION_TABLE = "homeport_schema_version"


class StoreError(HomeportError):
    """Homeport's store cannot be opened, or its schema is not the one this code knows."""


def store_url(deployment: Deployment) -> URL:
    if deployment.store.database == "sqlite":
        path = DeploymentLayout(deployment.data_dir).store_database
        return URL.create("sqlite", database=str(path))
    return postgres_url(deployment.store.database)


def postgres_url(database: str) -> URL:
    """SQLAlchemy's URL of a `postgresql://` URL from homeport.yaml (psycopg2, as Synapse)."""
    url = parse_postgres_url(database)
    return URL.create(
        "postgresql+psycopg2",
        username=url.user,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database,
    )


def where(engine: Engine) -> str:
    """The store's URL for messages: never with its password."""
    return engine.url.render_as_string(hide_password=True)


def create_store_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        ensure_dir(Path(url.database).parent)
        # hide_parameters: an error's message never carries what people said (audit records).
        engine = create_engine(
            url, connect_args={"timeout": sqlite.BUSY_TIMEOUT_S}, hide_parameters=True
        )
        sqlite.control_transactions(engine)  # one real transaction per `begin()`
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4, hide_parameters=True)


def recorded_revision(connection: Connection) -> str | None:
    """The schema revision the store records; None for an empty store."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    version = table(VERSION_TABLE, column("version_num"))
    found = connection.execute(select(version.c.version_num)).scalar()
    return None if found is None else str(found)


def open_store(deployment: Deployment) -> Engine:
    """The store's engine, once its schema is known to be the one this code reads."""
    engine = create_store_engine(store_url(deployment))
    try:
        with engine.connect() as connection:
            revision = recorded_revision(connection)
    except SQLAlchemyError as error:
        engine.dispose()
        raise StoreError(f"cannot open Homeport's store at {where(engine)}: {error}") from error
    head = SCHEMA_REVISION
    if revision != head:
        engine.dispose()
        raise StoreError(
            f"Homeport's store at {where(engine)} has schema {revision or 'none'}, this "
            f"Homeport needs {head}: run `homeport store migrate` (`homeport up` does it too)"
        )
    return engine
