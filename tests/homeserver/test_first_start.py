"""The start that creates a homeserver's database, and only that one, runs Synapse's
background updates unpaced; SQLite and PostgreSQL (this machine's server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest
import yaml

from homeport.config.homeserver import Homeserver
from homeport.config.loader import load_deployment_text
from homeport.homeserver.first_start import extra_config_files
from homeport.layout import HomeserverLayout


def homeserver(tmp_path: Path, database: str = "sqlite", synapse: str = "") -> Homeserver:
    text = (
        "homeservers:\n  internal:\n    server_name: localhost:8448\n    port: 8448\n"
        f"    database: {database}\n{synapse}"
    )
    deployment = load_deployment_text(text, tmp_path / "homeport.yaml")[0]
    return deployment.homeservers["internal"]


@pytest.mark.parametrize(
    ("database_file", "synapse", "unpaced"),
    [
        (None, "", True),  # first start: no database yet
        (b"", "", True),  # an empty file Synapse never wrote to
        (b"SQLite format 3\x00", "", False),  # Synapse has run here
        (None, "    synapse:\n      background_updates: {sleep_duration_ms: 200}\n", False),
    ],
    ids=["new", "empty-file", "existing", "administrator-decides"],
)
def test_sqlite(tmp_path: Path, database_file: bytes | None, synapse: str, unpaced: bool) -> None:
    files = HomeserverLayout(tmp_path / "internal")
    files.root.mkdir()
    if database_file is not None:
        files.sqlite_database.write_bytes(database_file)
    files.first_start_config.write_text("left from an earlier start\n")
    extra = extra_config_files(homeserver(tmp_path, synapse=synapse), files)
    if unpaced:
        assert extra == [files.first_start_config]
        settings = yaml.safe_load(files.first_start_config.read_text())
        assert settings == {"background_updates": {"sleep_enabled": False}}
    else:
        assert extra == []
        assert not files.first_start_config.exists()  # never loaded by a later start


def test_postgres_new_then_created(tmp_path: Path, postgres_database: str) -> None:
    files = HomeserverLayout(tmp_path / "internal")
    files.root.mkdir()
    hs = homeserver(tmp_path, database=postgres_database)
    assert extra_config_files(hs, files) == [files.first_start_config]
    with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE schema_version (version INTEGER)")  # as Synapse's first start
    assert extra_config_files(hs, files) == []


def test_an_unreachable_postgres_gets_the_usual_settings(
    tmp_path: Path, postgres_databases: Callable[[], str]
) -> None:
    files = HomeserverLayout(tmp_path / "internal")
    files.root.mkdir()
    missing = postgres_databases().rsplit("/", 1)[0] + "/homeport_test_no_such_database"
    assert extra_config_files(homeserver(tmp_path, database=missing), files) == []
