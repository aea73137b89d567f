"""A backup taken while the deployment runs, restored once on new databases, runs again.

Internal's Synapse is on SQLite, external's and Homeport's store on the
machine's PostgreSQL. After the restore (new folder, new databases, the same
ports), both servers present the same signing keys, users log in with their
passwords, the room's history and its media are there, federation carries
new messages both ways, and external's audit bot goes on recording into the
restored store.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from homeport.trust import client_ssl_context
from tests.audit_helpers import client_for, create_room, text, wait_recorded_async
from tests.harness import RunningDeployment, access_token, edit_yaml, homeport, init_deployment
from tests.matrix import exchange_messages

pytestmark = pytest.mark.e2e


async def _server_keys(running: RunningDeployment, context: ssl.SSLContext) -> dict[str, Any]:
    keys = {}
    async with httpx.AsyncClient(verify=context, timeout=30) as http:
        for name, hs in running.deployment.homeservers.items():
            answer = await http.get(f"{hs.base_url}/_matrix/key/v2/server")
            assert answer.status_code == 200, answer.text
            keys[name] = answer.json()["verify_keys"]
    return keys


async def _history(
    running: RunningDeployment, context: ssl.SSLContext, user: dict[str, str], room_id: str
) -> list[str]:
    """The bodies of the room's messages as `user` on internal reads them, oldest first."""
    deployment = running.deployment
    token = (await access_token(deployment, "internal", user["user_id"], user["password"]))[0]
    base = deployment.homeservers["internal"].base_url
    async with httpx.AsyncClient(verify=context, timeout=30) as http:
        answer = await http.get(
            f"{base}/_matrix/client/v3/rooms/{quote(room_id)}/messages",
            params={"dir": "b", "limit": "50"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    return [
        e["content"]["body"]
        for e in reversed(answer.json()["chunk"])
        if e["type"] == "m.room.message"
    ]


async def _media(
    running: RunningDeployment, context: ssl.SSLContext, user: dict[str, str], upload: bytes | None
) -> str | bytes:
    """Upload `upload` on internal (returns its mxc URI), or download `user`'s media URI."""
    deployment = running.deployment
    token = (await access_token(deployment, "internal", user["user_id"], user["password"]))[0]
    base = deployment.homeservers["internal"].base_url
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(verify=context, timeout=30) as http:
        if upload is not None:
            answer = await http.post(
                f"{base}/_matrix/media/v3/upload",
                content=upload,
                headers={**headers, "Content-Type": "application/octet-stream"},
            )
            assert answer.status_code == 200, answer.text
            return str(answer.json()["content_uri"])
        server, media_id = user["media"].removeprefix("mxc://").split("/")
        answer = await http.get(
            f"{base}/_matrix/client/v1/media/download/{server}/{media_id}", headers=headers
        )
        assert answer.status_code == 200, answer.text
        return answer.content


async def test_a_backup_of_a_running_deployment_restores_and_runs(
    tmp_path: Path, postgres_databases: Callable[[], str]
) -> None:
    original = tmp_path / "original"
    config = init_deployment(original)
    external_db, store_db = postgres_databases(), postgres_databases()

    def use_postgres(data: Any) -> None:
        data["homeservers"]["external"]["database"] = external_db
        data["store"] = {"database": store_db}

    edit_yaml(config, use_postgres)
    running = RunningDeployment(config)
    restored: RunningDeployment | None = None
    archive = tmp_path / "backups" / "homeport.tar.gz"
    try:
        running.start()
        context = client_ssl_context(running.deployment)
        alice = dict(zip(("user_id", "password"), await running.new_user("internal"), strict=True))
        bob = dict(zip(("user_id", "password"), await running.new_user("external"), strict=True))
        room_id = await exchange_messages(running, context, alice, bob, "kept")
        media = b"\x89PNG the media survives"
        alice["media"] = str(await _media(running, context, alice, media))
        _, carol = await client_for(running, "external", context)
        async with carol:
            audited = await create_room(carol, preset="private_chat")
            homeport("audit", "add", "-c", str(config), "external", audited)
            before = await text(carol, audited, "recorded before the backup")
        await wait_recorded_async(
            running, "external", audited, lambda e: before in {x.event_id for x in e}
        )
        keys = await _server_keys(running, context)

        made = homeport("backup", "-c", str(config), "--out", str(archive), "--json", timeout=300)
        manifest = json.loads(made.stdout)
        assert set(manifest["databases"].values()) == {"homeserver external", "store"}
        assert "data/homeservers/internal/homeserver.db" in manifest["files"]
        running.stop()

        # A new machine: another folder, other (empty) databases, the same server names.
        new_external_db, new_store_db = postgres_databases(), postgres_databases()
        edited = tmp_path / "homeport.yaml"
        edited.write_text(config.read_text())

        def new_databases(data: Any) -> None:
            data["homeservers"]["external"]["database"] = new_external_db
            data["store"] = {"database": new_store_db}

        edit_yaml(edited, new_databases)
        target = tmp_path / "restored"
        homeport("restore", str(archive), "--to", str(target), "--config", str(edited), timeout=300)
        # Loading the same dump again is refused: the databases hold tables now.
        again = homeport(
            "restore",
            str(archive),
            "--to",
            str(tmp_path / "again"),
            "--config",
            str(edited),
            check=False,
        )
        assert again.returncode == 1
        assert "already holds tables" in again.stderr
        assert not (tmp_path / "again").exists()

        restored = RunningDeployment(target / "homeport.yaml")
        restored.start()
        assert await _server_keys(restored, context) == keys
        history = await _history(restored, context, alice, room_id)
        assert history[-2:] == ["hello from internal", "hello from external"]
        assert await _media(restored, context, alice, None) == media
        # Federation goes on with the same identities: new messages cross both ways.
        await exchange_messages(restored, context, alice, bob, "after-restore")
        _, carol_again = await client_for(restored, "external", context)
        async with carol_again:
            audited_after = await create_room(carol_again, preset="private_chat")
            homeport("audit", "add", "-c", str(target / "homeport.yaml"), "external", audited_after)
            after = await text(carol_again, audited_after, "recorded after the restore")
        await wait_recorded_async(
            restored, "external", audited_after, lambda e: after in {x.event_id for x in e}
        )
        exported = homeport(
            "audit", "export", "-c", str(target / "homeport.yaml"), "external", "--room", audited
        ).stdout
        assert "recorded before the backup" in exported
    finally:
        for deployment in (running, restored):
            if deployment is not None:
                if deployment.process is not None:
                    deployment.stop()
                deployment.kill_leftovers()
