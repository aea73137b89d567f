"""The same federated exchange with external on the machine's real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
import pytest

from homeport.trust import client_ssl_context
from tests.harness import RunningDeployment, edit_yaml, init_deployment, status_json
from tests.matrix import exchange_messages

pytestmark = pytest.mark.e2e


async def test_federated_exchange_with_one_homeserver_on_postgresql(
    tmp_path: Path, postgres_database: str
) -> None:
    config = init_deployment(tmp_path)

    def use_postgres(data: Any) -> None:
        data["homeservers"]["external"]["database"] = postgres_database

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
    finally:
        if running.process is not None:
            running.stop()
        running.kill_leftovers()
