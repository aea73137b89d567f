"""PostgreSQL's client tools for a backup: `pg_dump` out, `pg_restore` in, a table count.

The backup holds PostgreSQL databases as `pg_dump` archives, so the tools
must be installed; the password goes to them through libpq's environment,
never on a command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import sqlalchemy
import sqlalchemy.exc

from homeport.config.types import parse_postgres_url, redacted
from homeport.errors import HomeportError
from homeport.store.database import postgres_url


def _pg_env(url: str) -> dict[str, str]:
    """libpq's variables: the password never appears on a command line (`ps` shows those)."""
    parts = parse_postgres_url(url)
    env = {**os.environ, "PGDATABASE": parts.database, "PGCONNECT_TIMEOUT": "10"}
    for key, value in (
        ("PGHOST", parts.host),
        ("PGPORT", parts.port),
        ("PGUSER", parts.user),
        ("PGPASSWORD", parts.password),
    ):
        if value is not None:
            env[key] = str(value)
    return env


def pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise HomeportError(
            f"{name} is not installed, and a database of this deployment is on PostgreSQL: "
            "install PostgreSQL's client tools (Debian: apt install postgresql-client), at "
            "the server's major version or newer"
        )
    return found


def run_pg(command: list[str], url: str, what: str) -> None:
    result = subprocess.run(command, env=_pg_env(url), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HomeportError(f"{what} failed on {redacted(url)}: {result.stderr.strip()}")


def table_count(url: str) -> int:
    engine = sqlalchemy.create_engine(
        postgres_url(url),
        connect_args={"connect_timeout": 10},
        poolclass=sqlalchemy.NullPool,
    )
    try:
        with engine.connect() as connection:
            count = connection.execute(
                sqlalchemy.text(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            ).scalar_one()
    except sqlalchemy.exc.OperationalError as error:
        raise HomeportError(
            f"cannot reach {redacted(url)}: {str(error.orig).strip()}; create the database "
            "(for Synapse: ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0) "
            "and check the URL in homeport.yaml"
        ) from None
    finally:
        engine.dispose()
    return int(count)
