"""The start that creates a homeserver's database: Synapse's background updates unpaced.

A brand-new Synapse database queues about sixty background updates, and
Synapse sleeps a second before each batch (`background_updates.sleep_duration_ms`)
so that a large database's migration never starves its users. On an empty
database each update is a single batch with nothing to do, so the pacing only
makes a new homeserver wait a minute for them, and `homeport verify` waits for
them (the user directory is rebuilt among them).

So the run of Synapse that creates its database gets one more config file,
after `homeserver.yaml`, with `sleep_enabled: false`. `homeserver.yaml` is the
same as on every other start (its digest, `restart` and `verify` see no
difference), and any later start, after a Synapse upgrade brings updates that
touch real data, paces them again. An administrator's own `background_updates`
section (`homeservers.<name>.synapse`) always wins: nothing is added then.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from homeport.config.homeserver import Homeserver
from homeport.files import write_atomic
from homeport.layout import HomeserverLayout
from homeport.store.database import postgres_url

UNPACED = (
    b"# Written by homeport up for the start that creates the database;\n"
    b"# see homeport/homeserver/first_start.py.\nbackground_updates:\n  sleep_enabled: false\n"
)

# Synapse records its schema here from its very first start.
SCHEMA_TABLE = "schema_version"


def database_is_new(hs: Homeserver, files: HomeserverLayout) -> bool:
    """True when Synapse has never created its tables in this homeserver's database."""
    if hs.database == "sqlite":
        path = files.sqlite_database
        return not path.exists() or path.stat().st_size == 0
    engine = create_engine(postgres_url(hs.database), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            return not inspect(connection).has_table(SCHEMA_TABLE)
    except SQLAlchemyError:
        return False  # unreachable: Synapse will say so itself, on its usual settings
    finally:
        engine.dispose()


def extra_config_files(hs: Homeserver, files: HomeserverLayout) -> list[Path]:
    """The config files to load after `homeserver.yaml` on this start (none or one)."""
    if "background_updates" in hs.synapse or not database_is_new(hs, files):
        files.first_start_config.unlink(missing_ok=True)
        return []
    write_atomic(files.first_start_config, UNPACED)
    return [files.first_start_config]
