"""The audit bot loses nothing: killed mid-stream, its homeserver restarted, encrypted rooms.

A deployment of its own: these tests kill and restart processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    RoomCreateResponse,
    RoomSendResponse,
)

from homeport.audit.registration import BOT_ADDRESS
from homeport.synapse.api import SynapseApiError, SynapseClient
from homeport.synapse.service_account import service_client
from homeport.trust import client_ssl_context
from tests.audit_helpers import (
    bodies,
    client_for,
    create_room,
    exporting_deployment,
    membership,
    text,
    wait_recorded_async,
)
from tests.harness import (
    RunningDeployment,
    access_token,
    edit_yaml,
    homeport,
    status_json,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    with exporting_deployment(tmp_path_factory.mktemp("audit"), "64K") as running:
        yield running


def export_order(path: Path) -> tuple[str, int]:
    """`audit-internal-<day>.jsonl`, then `.1.jsonl`, `.2.jsonl`...: the order written."""
    day, _, number = path.name.removesuffix(".jsonl").removeprefix("audit-internal-").partition(".")
    return day, int(number or 0)


def exported_ids(running: RunningDeployment) -> list[str]:
    lines = []
    folder = running.config_path.parent / "exported"
    for path in sorted(folder.glob("audit-internal-*.jsonl"), key=export_order):
        lines += [json.loads(line)["event_id"] for line in path.read_text().splitlines()]
    return lines


@pytest.fixture(scope="module")
def context(running: RunningDeployment) -> ssl.SSLContext:
    return client_ssl_context(running.deployment)


def bot_service(running: RunningDeployment) -> dict[str, object]:
    service: dict[str, object] = status_json(running.config_path)["services"]["audit-internal"]
    return service


async def lift_rate_limit(running: RunningDeployment, user_id: str) -> None:
    """What a server admin does for an account that sends in bulk (a bridge, an import):
    Synapse's `override_ratelimit` for that one user. The deployment keeps Homeport's
    rate limits (2 messages/s after a burst of 30), which would make 500 messages take
    four minutes."""
    async with service_client(running.deployment, "internal") as admin:
        await admin.override_ratelimit(user_id)


async def unlimited_client(
    running: RunningDeployment, context: ssl.SSLContext
) -> tuple[str, SynapseClient]:
    user_id, client = await client_for(running, "internal", context)
    await lift_rate_limit(running, user_id)
    return user_id, client


def wait_until(
    done: Callable[[], bool], what: str, timeout: float = 60, pause: float = 0.3
) -> None:
    """Poll `done()` until it is true; fail naming `what` was waited for."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(pause)


def failed_transactions(running: RunningDeployment) -> float:
    """The bot's count of transactions it could not store (answered 500), from /metrics."""
    bot = running.deployment.homeservers["internal"].audit_bot
    assert bot is not None
    metrics = httpx.get(f"http://{BOT_ADDRESS}:{bot.port}/metrics", timeout=10).text
    found = re.search(
        r'^homeport_audit_transactions_total\{outcome="failed"\} (\S+)$', metrics, re.M
    )
    return float(found.group(1)) if found else 0.0


def wait_bot_back(running: RunningDeployment, old_pid: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service = bot_service(running)
        if service["pid"] not in (None, old_pid) and service["state"] == "ready":
            return
        time.sleep(0.3)
    raise AssertionError(f"the audit bot did not come back: {bot_service(running)}")


async def test_a_bot_killed_while_500_messages_are_sent_records_each_once(
    running: RunningDeployment, context: ssl.SSLContext
) -> None:
    _, alice = await unlimited_client(running, context)
    async with alice:
        room = await create_room(alice, preset="private_chat")
        homeport("audit", "add", "-c", str(running.config_path), "internal", room)
        before = bot_service(running)
        pid, restarts = before["pid"], before["restarts"]
        assert isinstance(pid, int)
        assert isinstance(restarts, int)
        sent = []
        for n in range(500):
            sent.append(await text(alice, room, f"message {n}"))
            if n == 150:
                os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(wait_bot_back, running, pid)
    assert bot_service(running)["restarts"] == restarts + 1  # the one kill

    def complete(events: list) -> bool:  # type: ignore[type-arg]
        return len(bodies(events)) >= 500

    events = await wait_recorded_async(running, "internal", room, complete, timeout=180)
    messages = [e for e in events if e.type == "m.room.message"]
    assert sorted(e.event_id for e in messages) == sorted(sent)  # each once, none lost
    # Recording order is arrival order: after a crash Synapse's recoverer may deliver
    # an older transaction after newer ones; the senders' order is origin_server_ts.
    by_time = sorted(messages, key=lambda e: (e.origin_server_ts, e.seq))
    assert [e.event_id for e in by_time] == sent
    # The continuous export has them too, in files of about 64 KiB: a file is closed
    # once it reaches the size, so each but the newest holds at least 64 KiB, and
    # none more than 64 KiB plus its last line.
    await asyncio.to_thread(
        wait_until,
        lambda: set(sent) <= set(exported_ids(running)),
        "the continuous export to hold the 500 messages",
    )
    folder = running.config_path.parent / "exported"
    files = sorted(folder.glob("audit-internal-*.jsonl"), key=export_order)
    limit = 64 * 1024
    sizes = [f.stat().st_size for f in files]
    assert sum(sizes) > limit, sizes  # 500 messages fill more than one file
    longest = max(len(line) + 1 for f in files for line in f.read_bytes().splitlines())
    assert all(size >= limit for size in sizes[:-1]), sizes
    assert all(size < limit + longest for size in sizes), (sizes, longest)
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}  # what people said


async def test_nothing_is_lost_when_the_homeserver_stops_during_sending(
    running: RunningDeployment, context: ssl.SSLContext
) -> None:
    deployment = running.deployment
    base_url = deployment.homeservers["internal"].base_url
    user_id, password = await running.new_user("internal")
    await lift_rate_limit(running, user_id)

    async def alice() -> SynapseClient:
        token = (await access_token(deployment, "internal", user_id, password))[0]
        return SynapseClient(base_url, context, token)

    async with await alice() as client:
        room = await create_room(client, preset="private_chat")
        homeport("audit", "add", "-c", str(running.config_path), "internal", room)
        sent = [await text(client, room, f"before stop {n}") for n in range(100)]
    # Stopped at once: whatever Synapse had not delivered yet waits in its database.
    homeport("stop", "-c", str(running.config_path), "internal")
    homeport("start", "-c", str(running.config_path), "internal", timeout=180)
    async with await alice() as client:
        sent.append(await text(client, room, "after start"))

    def complete(events: list) -> bool:  # type: ignore[type-arg]
        return "after start" in bodies(events)

    events = await wait_recorded_async(running, "internal", room, complete, timeout=180)
    messages = [e.event_id for e in events if e.type == "m.room.message"]
    assert sorted(messages) == sorted(sent)


async def _encrypting_client(
    running: RunningDeployment, context: ssl.SSLContext, store: Path
) -> AsyncClient:
    user_id, password = await running.new_user("internal")
    store.mkdir()
    client = AsyncClient(
        running.deployment.homeservers["internal"].base_url,
        user_id,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        ssl=context,
    )
    login = await client.login(password, device_name="e2ee test")
    assert isinstance(login, LoginResponse), login
    return client


async def _send_encrypted(client: AsyncClient, room: str, body: str) -> str:
    await client.sync(timeout=0, full_state=True)
    if client.should_query_keys:
        await client.keys_query()
    sent = await client.room_send(
        room,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        ignore_unverified_devices=True,
    )
    assert isinstance(sent, RoomSendResponse), sent
    return str(sent.event_id)


async def test_an_encrypted_room_is_recorded_in_plaintext_across_a_restart(
    running: RunningDeployment, context: ssl.SSLContext, tmp_path: Path
) -> None:
    client = await _encrypting_client(running, context, tmp_path / "alice")
    try:
        await client.sync(timeout=0)
        created = await client.room_create(
            name="Secret",
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        assert isinstance(created, RoomCreateResponse), created
        room = created.room_id
        await asyncio.to_thread(
            homeport, "audit", "add", "-c", str(running.config_path), "internal", room
        )
        first = await _send_encrypted(client, room, "the secret plan")

        def decrypted(event_id: str):  # type: ignore[no-untyped-def]
            def done(events: list) -> bool:  # type: ignore[type-arg]
                return any(e.event_id == event_id and e.decrypted for e in events)

            return done

        events = await wait_recorded_async(running, "internal", room, decrypted(first))
        event = next(e for e in events if e.event_id == first)
        assert event.encrypted
        assert event.type == "m.room.encrypted"
        assert "the secret plan" not in str(event.content)  # ciphertext as sent
        assert event.decrypted == {
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": "the secret plan"},
        }

        # Sent while the bot is down, under a new room key: the event is recorded when
        # Synapse delivers it, its key arrives by the device's sync, and the plaintext
        # completes the record. A restart is the same device with the same keys.
        homeport("stop", "-c", str(running.config_path), "audit-internal")
        # Really down while the second message is sent (it shares its process with
        # Homeport's other services, which keep running: no pid while stopped).
        stopped = bot_service(running)
        assert (stopped["state"], stopped["running"], stopped["pid"]) == ("stopped", False, None)
        client.olm.outbound_group_sessions.pop(room, None)  # what rotation does
        second = await _send_encrypted(client, room, "the second plan")
        homeport("start", "-c", str(running.config_path), "audit-internal")
        await wait_recorded_async(running, "internal", room, decrypted(second))
        assert bot_service(running)["state"] == "ready"
        third = await _send_encrypted(client, room, "the third plan")  # the same session
        events = await wait_recorded_async(running, "internal", room, decrypted(third))
        texts = [e.decrypted["content"]["body"] for e in events if e.decrypted]
        assert texts == ["the secret plan", "the second plan", "the third plan"]
        exported = homeport(
            "audit",
            "export",
            "-c",
            str(running.config_path),
            "internal",
            "--room",
            room,
            "--format",
            "csv",
        ).stdout
        assert "the second plan" in exported
        # The continuous export has the plaintext too: in the event's line when it was
        # known by then, else in a `decrypted` line that follows.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            folder = running.config_path.parent / "exported"
            written = "".join(f.read_text() for f in folder.glob("audit-internal-*.jsonl"))
            if "the second plan" in written and "the third plan" in written:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError("the continuous export lacks the plaintexts")
    finally:
        await client.close()


async def test_auto_join_audits_every_local_room_old_and_new_but_not_direct_messages(
    running: RunningDeployment, context: ssl.SSLContext
) -> None:
    deployment = running.deployment
    bot = deployment.homeservers["internal"].audit_user_id
    assert bot is not None
    alice_id, alice = await client_for(running, "internal", context)
    friend_id, friend = await client_for(running, "internal", context)
    third_id, _ = await running.new_user("internal")
    async with alice, friend:
        old_room = await create_room(alice, preset="private_chat")
        old_dm = await create_room(
            alice, preset="trusted_private_chat", is_direct=True, invite=[friend_id]
        )
        # What Element does for a direct chat: the room goes into m.direct.
        await alice.request(
            "PUT",
            f"/_matrix/client/v3/user/{quote(alice_id)}/account_data/m.direct",
            json={friend_id: [old_dm]},
        )
        # A server admin endpoint: an ordinary user is refused.
        with pytest.raises(SynapseApiError) as refused:
            await alice.request(
                "POST", "/_homeport/v1/audit/add", json={"room": old_room, "by": alice_id}
            )
        assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")

        def local_rooms(data: Any) -> None:
            data["homeservers"]["internal"]["audit"]["auto_join"] = "local_rooms"

        edit_yaml(running.config_path, local_rooms)
        await asyncio.to_thread(
            homeport, "restart", "-c", str(running.config_path), "internal", timeout=180
        )
        new_room = await create_room(alice, preset="private_chat")
        new_dm = await create_room(
            alice, preset="trusted_private_chat", is_direct=True, invite=[friend_id]
        )
        # Marked direct but with two others: a group room, recorded whatever the flag says.
        group_marked_direct = await create_room(
            alice, preset="trusted_private_chat", is_direct=True, invite=[friend_id, third_id]
        )
        await text(alice, new_room, "in a new room")
        # With auto_join anyone may invite the bot, but into a direct chat only an admin.
        refused_dm = await membership(alice, new_dm, "invite", bot)
        assert refused_dm is not None
        assert (refused_dm.status, refused_dm.errcode) == (403, "M_FORBIDDEN")
        assert "direct chats" in refused_dm.message
        for room in (old_room, new_room, group_marked_direct):
            await wait_recorded_async(
                running,
                "internal",
                room,
                lambda events: any(
                    e.state_key == bot and e.content.get("membership") == "join" for e in events
                ),
            )
        # An upgrade of an audited room is audited in its successor.
        upgraded = await alice.request(
            "POST",
            f"/_matrix/client/v3/rooms/{quote(new_room)}/upgrade",
            json={"new_version": "12"},
        )
        successor = upgraded["replacement_room"]
        await wait_recorded_async(
            running,
            "internal",
            successor,
            lambda events: any(e.state_key == bot for e in events),
        )
    listed = json.loads(
        homeport("audit", "list", "-c", str(running.config_path), "internal", "--json").stdout
    )
    audited = {r["room_id"] for r in listed}  # the module's other tests' rooms too
    mine = {old_room, old_dm, new_room, new_dm, group_marked_direct, successor}
    assert audited & mine == {old_room, new_room, successor, group_marked_direct}


async def test_a_message_redacted_before_the_bot_stored_it_is_recorded_as_sent(
    running: RunningDeployment, context: ssl.SSLContext
) -> None:
    """The store is locked (a backup, a slow disk): the bot cannot commit and answers 500,
    so Synapse sends the transaction again later, reading it anew from its database,
    where the message has been redacted meanwhile. The bot records it as it was sent."""
    _, alice = await client_for(running, "internal", context)
    async with alice:
        room = await create_room(alice, preset="private_chat")
        homeport("audit", "add", "-c", str(running.config_path), "internal", room)
        failed_before = await asyncio.to_thread(failed_transactions, running)
        lock = sqlite3.connect(running.layout.store_database, timeout=5, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            said = await text(alice, room, "words someone regrets")
            await alice.request(
                "PUT",
                f"/_matrix/client/v3/rooms/{quote(room)}/redact/{quote(said)}/r1",
                json={"reason": "regret"},
            )
            # The bot waits up to 30 s for the store, then answers 500 (not stored):
            # Synapse keeps the transaction, by then holding the redacted message.
            await asyncio.to_thread(
                wait_until,
                lambda: failed_transactions(running) > failed_before,
                "the bot to answer a transaction 500 while the store was locked",
                timeout=120,
            )
        finally:
            lock.execute("ROLLBACK")
            lock.close()

    def redaction_recorded(events: list) -> bool:  # type: ignore[type-arg]
        return any(e.redacts == said for e in events)

    events = await wait_recorded_async(running, "internal", room, redaction_recorded)
    original = next(e for e in events if e.event_id == said)
    assert original.body == "words someone regrets"
    assert original.content["body"] == "words someone regrets"
    failed = [
        line
        for line in running.layout.audit("internal").log_file.read_text().splitlines()
        if "could not store transaction" in line
    ]
    assert failed, "the store was never locked: the test proved nothing"
