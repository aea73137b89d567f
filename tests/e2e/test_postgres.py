"""The same federated exchange with external on the machine's real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from homeport.store.migrate import head_revision
from homeport.trust import client_ssl_context
from tests.harness import RunningDeployment, edit_yaml, init_deployment, status_json
from tests.matrix import exchange_messages

pytestmark = pytest.mark.e2e


async def test_federated_exchange_with_one_homeserver_on_postgresql(
    tmp_path: Path, postgres_databases: Callable[[], str]
) -> None:
    """External's Synapse and Homeport's own store each on a PostgreSQL database."""
    config = init_deployment(tmp_path)
    postgres_database, store_database = postgres_databases(), postgres_databases()

    def use_postgres(data: Any) -> None:
        data["homeservers"]["external"]["database"] = postgres_database
        data["store"] = {"database": store_database}

    edit_yaml(config, use_postgres)
    running = RunningDeployment(config)
    try:
        running.start()
        alice = dict(zip(("user_id", "password"), await running.new_user("internal"), strict=True))
        bob = dict(zip(("user_id", "password"), await running.new_user("external"), strict=True))
        await exchange_messages(running, client_ssl_context(running.deployment), alice, bob, "pg")

        # External's users and events really live in PostgreSQL.
        with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT name FROM users WHERE name = %s", (bob["user_id"],))
            assert cursor.fetchone() == (bob["user_id"],)
            cursor.execute("SELECT count(*) FROM events WHERE sender = %s", (alice["user_id"],))
            (count,) = cursor.fetchone()
            assert count >= 2
        connection.close()
        assert not (running.layout.homeserver("external").sqlite_database).exists()
        assert status_json(config)["homeservers"]["external"]["ready"] is True
        # `up` migrated Homeport's store in its own database, and the website reads it.
        assert not running.layout.store_database.exists()
        with psycopg2.connect(store_database) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT version_num FROM homeport_schema_version")
            assert cursor.fetchone() == (head_revision(),)
        connection.close()
        assert status_json(config)["services"]["admin"]["state"] == "ready"
    finally:
        if running.process is not None:
            running.stop()
        running.kill_leftovers()
