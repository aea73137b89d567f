"""The same federated exchange with external on the machine's real PostgreSQL server."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg2
import pytest

from homeport.store.migrate import head_revision
from homeport.trust import client_ssl_context
from tests.admin.website import log_in
from tests.audit_helpers import (
    bot_joined,
    client_for,
    create_room,
    text,
    wait_recorded_async,
)
from tests.harness import (
    RunningDeployment,
    access_token,
    edit_yaml,
    homeport,
    init_deployment,
    status_json,
)
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
        # Its bot joins every room made there: the module's direct-chat queries run on
        # PostgreSQL at each creation (a literal `%` in them once failed every one).
        data["homeservers"]["external"]["audit"]["auto_join"] = "local_rooms"
        data["store"] = {"database": store_database}

    edit_yaml(config, use_postgres)
    running = RunningDeployment(config)
    try:
        running.start()
        alice = dict(zip(("user_id", "password"), await running.new_user("internal"), strict=True))
        bob = dict(zip(("user_id", "password"), await running.new_user("external"), strict=True))
        room_id = await exchange_messages(
            running, client_ssl_context(running.deployment), alice, bob, "pg"
        )

        # External's users and events really live in PostgreSQL.
        with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT name FROM users WHERE name = %s", (bob["user_id"],))
            assert cursor.fetchone() == (bob["user_id"],)
            cursor.execute("SELECT count(*) FROM events WHERE sender = %s", (alice["user_id"],))
            (count,) = cursor.fetchone()
            assert count >= 2
        connection.close()
        assert not (running.layout.homeserver("external").sqlite_database).exists()
        # The rendered config and the record of what was applied may hold a password.
        for private in (
            running.layout.homeserver("external").config_file,
            running.layout.applied_file,
        ):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
        assert status_json(config)["homeservers"]["external"]["ready"] is True
        # `up` migrated Homeport's store in its own database, and the website reads it.
        assert not running.layout.store_database.exists()
        with psycopg2.connect(store_database) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT version_num FROM homeport_schema_version")
            assert cursor.fetchone() == (head_revision(),)
        connection.close()
        assert status_json(config)["services"]["admin"]["state"] == "ready"
        await _website_on_postgresql(running)
        await _audit_on_postgresql(running, config, store_database)
        await _undelivered_on_postgresql(running, config, room_id, bob)
        # Verify's probes and `restart`, with external's state in PostgreSQL.
        verified = homeport("verify", "-c", str(config), "--json", check=False, timeout=240)
        report = json.loads(verified.stdout)
        assert [c for c in report["checks"] if not c["ok"]] == []
        assert verified.returncode == 0
        pid = status_json(config)["homeservers"]["external"]["pid"]
        homeport("restart", "-c", str(config), "external", timeout=240)
        after = status_json(config)["homeservers"]["external"]
        assert after["ready"] is True
        assert after["pid"] != pid
    finally:
        if running.process is not None:
            running.stop()
        running.kill_leftovers()


async def _audit_on_postgresql(
    running: RunningDeployment, config: Path, store_database: str
) -> None:
    """External's audit bot (its Synapse and Homeport's store both on PostgreSQL), which
    joins the rooms made there (`auto_join: local_rooms`)."""
    context = client_ssl_context(running.deployment)
    _, bob = await client_for(running, "external", context)
    async with bob:
        room = await create_room(bob, preset="private_chat")
        # The bot joins just after the creation; it records from its join on.
        bot = running.deployment.homeservers["external"].audit_user_id
        assert bot is not None
        await wait_recorded_async(running, "external", room, bot_joined(bot))
        said = await text(bob, room, "recorded in PostgreSQL")
    await wait_recorded_async(running, "external", room, lambda e: said in {x.event_id for x in e})
    exported = homeport("audit", "export", "-c", str(config), "external", "--room", room).stdout
    assert "recorded in PostgreSQL" in exported
    with psycopg2.connect(store_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT body FROM audit_events WHERE event_id = %s", (said,))
        assert cursor.fetchone() == ("recorded in PostgreSQL",)
    connection.close()


async def _undelivered_on_postgresql(
    running: RunningDeployment, config: Path, room_id: str, bob: dict[str, str]
) -> None:
    """The module's delivery query and its own order, on external's PostgreSQL."""
    deployment = running.deployment
    context = client_ssl_context(deployment)
    external = deployment.homeservers["external"]
    internal_name = deployment.homeservers["internal"].server_name
    admin_id, admin_password = await running.new_user("external", admin=True)
    root = (await access_token(deployment, "external", admin_id, admin_password))[0]
    token = (await access_token(deployment, "external", bob["user_id"], bob["password"]))[0]
    homeport("stop", "-c", str(config), "internal")
    before_ms = int(time.time() * 1000)
    async with httpx.AsyncClient(verify=context, timeout=30) as http:
        sent = await http.put(
            f"{external.base_url}/_matrix/client/v3/rooms/{quote(room_id)}/send/"
            f"m.room.message/{secrets.token_hex(4)}",
            headers={"Authorization": f"Bearer {token}"},
            json={"msgtype": "m.text", "body": "while internal is away"},
        )
        assert sent.status_code == 200, sent.text
        (waiting,) = status_json(config)["homeservers"]["external"]["federation"]["undelivered"]
        assert waiting["destination"] == internal_name
        assert waiting["rooms"] == 1
        assert before_ms - 1000 <= waiting["since_ms"] <= int(time.time() * 1000)
        ordered = await http.get(
            f"{external.base_url}/_homeport/v1/destinations",
            params={"order_by": "undelivered_since"},
            headers={"Authorization": f"Bearer {root}"},
        )
        assert ordered.status_code == 200, ordered.text
        assert ordered.json()["destinations"][0]["destination"] == internal_name
        assert ordered.json()["undelivered"][internal_name]["rooms"] == 1
    homeport("start", "-c", str(config), "internal", timeout=240)
    deadline = time.monotonic() + 120
    while status_json(config)["homeservers"]["external"]["federation"]["undelivered"]:
        assert time.monotonic() < deadline, "external never caught up with internal"
        await asyncio.sleep(1)


async def _website_on_postgresql(running: RunningDeployment) -> None:
    """External's Federation tab: one request to the module, its SQL on PostgreSQL."""
    deployment = running.deployment
    assert deployment.admin is not None
    admin_id, password = await running.new_user("external", admin=True)
    internal = deployment.homeservers["internal"].server_name
    context = client_ssl_context(deployment)
    async with httpx.AsyncClient(base_url=deployment.admin.url, verify=context) as website:
        assert (await log_in(website, "external", admin_id, password)).status_code == 303
        page = await website.get("/federation")
        assert page.status_code == 200
        row = re.search(rf"<tr>\s*<td><a[^>]*>{re.escape(internal)}</a>.*?</tr>", page.text, re.S)
        assert row, page.text
        assert re.search(r'<td class="num">1</td>', row.group(0))  # the one shared room
        ordered = await website.get("/federation?order_by=undelivered_since")
        assert ordered.status_code == 200
        assert internal in ordered.text
        details = await website.get(f"/federation/{quote(internal, safe='')}")
        assert details.status_code == 200
        assert "Federated rooms" in details.text
