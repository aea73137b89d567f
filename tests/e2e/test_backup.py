"""A backup taken while the deployment runs, restored once on new databases, runs again.

Internal's Synapse is on SQLite, external's and Homeport's store on the
machine's PostgreSQL. After the restore (new folder, new databases, the same
ports), both servers present the same signing keys, users log in with their
passwords, the room's history and its media are there, federation carries
new messages both ways (within what the retry settings promise), and
external's audit bot goes on recording into the restored store.

Then backups taken while messages pour into a recorded room: what each
restores is whole and consistent, Synapse's copy with the store's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import RoomSendResponse

from homeport.audit import store
from homeport.audit.registration import REGISTRATION_ID
from homeport.audit.store import Recorded, last_seq
from homeport.backup.archive import SQLITE_MAGIC
from homeport.policy.backoff import promise
from homeport.store.database import open_store
from homeport.synapse.api import SynapseClient
from homeport.synapse.service_account import service_client
from homeport.trust import client_ssl_context
from tests.audit_helpers import (
    bodies,
    client_for,
    create_room,
    recorded,
    text,
    wait_recorded_async,
)
from tests.harness import RunningDeployment, access_token, edit_yaml, homeport, init_deployment
from tests.matrix import exchange_messages, logged_in, wait_for_text

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


def _recovery_bound(running: RunningDeployment) -> float:
    """How long a restored server may take to hear its sibling: what the retry settings
    promise for a server that is back (`homeport/policy/backoff.py`: the longest backoff
    plus Synapse's one-minute catch-up round, 2 min with Homeport's settings), and a
    minute for a machine shared with other tests."""
    homeservers = running.deployment.homeservers.values()
    return max(promise(hs.federation_retries).recovered_within for hs in homeservers) + 60


async def _both_speak(
    running: RunningDeployment,
    context: ssl.SSLContext,
    alice: dict[str, str],
    bob: dict[str, str],
    room_id: str,
) -> None:
    """Alice (internal) and Bob (external) each say something in `room_id` and each hears
    the other, as people do once the servers are back.

    The two servers start together after a restore; one may try the other before it
    answers and then back off for up to `destination_max_retry_interval`. Synapse ends
    that backoff as soon as the other server contacts it, and otherwise retries within
    what the settings promise: both speak first, then both wait up to that promise.
    """
    internal = running.deployment.homeservers["internal"]
    external = running.deployment.homeservers["external"]
    bound = _recovery_bound(running)
    async with (
        logged_in(internal.base_url, alice["user_id"], alice["password"], context) as a,
        logged_in(external.base_url, bob["user_id"], bob["password"], context) as b,
    ):
        await a.sync(timeout=0)
        await b.sync(timeout=0)
        said = {a: "alice is back", b: "bob is back"}
        for client, body in said.items():
            sent = await client.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": body}
            )
            assert isinstance(sent, RoomSendResponse), sent
        await asyncio.gather(
            wait_for_text(b, room_id, said[a], timeout=bound),
            wait_for_text(a, room_id, said[b], timeout=bound),
        )


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
        # Federation goes on with the same identities: in the room they shared before,
        # both speak, and each hears the other; then a new room is made and joined.
        await _both_speak(restored, context, alice, bob, room_id)
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


# --- Backups taken while messages are written --------------------------------------------

AT_ONCE = 4  # sends in flight: Synapse mostly has a transaction out to the bot meanwhile
BACKUPS = 5  # about half the copies catch Synapse with a transaction out: see below


def _body(n: int) -> str:
    """Message n: its number and a 512-character tail derived from it, so that a message
    cut short, or another's text, shows."""
    return f"m{n:05d} " + hashlib.sha256(str(n).encode()).hexdigest() * 8


def _number(body: str) -> int:
    n = int(body[1:6])
    assert body == _body(n), f"message {n} is not whole: {body[:80]!r}..."
    return n


@dataclass
class _Writer:
    """Sends messages into a room until stopped, several at once, noting each message's
    number when its send began and when Synapse answered (stored)."""

    client: SynapseClient
    room: str
    begun: int = 0
    stored: dict[int, str] = field(default_factory=dict)  # number: event ID
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _one_sender(self) -> None:
        while not self.stop.is_set():
            n, self.begun = self.begun, self.begun + 1
            self.stored[n] = await text(self.client, self.room, _body(n))

    async def run(self) -> None:
        await asyncio.gather(*(self._one_sender() for _ in range(AT_ONCE)))


@dataclass(frozen=True)
class _SynapseSnapshot:
    """What a homeserver database says about a room's messages and the audit bot."""

    messages: dict[str, tuple[int, str]]  # event ID: (stream ordering, body)
    handled: int  # the application service sender's position: events up to it handed on
    pending: set[str]  # events of transactions the bot has not answered 200 yet
    newest_ts: int  # the newest event's origin_server_ts: the copy was taken after it

    def acknowledged(self) -> set[str]:
        """The messages Synapse counts as delivered to the bot.

        Synapse hands events on in order, one transaction at a time, and deletes a
        transaction once the bot answered 200: every message older than one still
        waiting was answered. Messages handed on after the newest waiting one may be
        in Synapse's memory only (element-hq/synapse#11637), and when no transaction
        was waiting the line between answered and in memory cannot be read: then
        this is empty."""
        waiting = [self.messages[e][0] for e in self.pending if e in self.messages]
        if not waiting:
            return set()
        return {
            event_id
            for event_id, (position, _) in self.messages.items()
            if position < min(waiting) and event_id not in self.pending
        }

    def not_handed_on(self) -> set[str]:
        return {e for e, (position, _) in self.messages.items() if position > self.handled}


class _StoreWatcher(threading.Thread):
    """Notes when each event of the room first shows in the original store: an upper
    bound of when the bot committed it (and so answered Synapse)."""

    def __init__(self, running: RunningDeployment, room: str) -> None:
        super().__init__(daemon=True)
        self.deployment, self.room = running.deployment, room
        self.seen: dict[str, float] = {}  # event ID: seconds since the epoch
        self.done = threading.Event()

    def run(self) -> None:
        engine = open_store(self.deployment)
        after = 0
        try:
            while not self.done.is_set():
                for event in store.stream(
                    engine, "internal", store.Filters(room_id=self.room), after
                ):
                    self.seen.setdefault(event.event_id, time.time())
                    after = max(after, event.seq)
                time.sleep(0.02)
        finally:
            engine.dispose()

    def stored_before(self, ms: int) -> set[str]:
        return {event_id for event_id, at in self.seen.items() if at * 1000 < ms}


def _read_only(database: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True))


def _synapse_snapshot(database: Path, room: str) -> _SynapseSnapshot:
    with _read_only(database) as db:
        rows = db.execute(
            "SELECT e.event_id, e.stream_ordering, j.json FROM events AS e "
            "JOIN event_json AS j USING (event_id) "
            "WHERE e.room_id = ? AND e.type = 'm.room.message'",
            (room,),
        ).fetchall()
        (handled,) = db.execute("SELECT stream_ordering FROM appservice_stream_position").fetchone()
        (newest_ts,) = db.execute("SELECT max(origin_server_ts) FROM events").fetchone()
        txns = db.execute(
            "SELECT event_ids FROM application_services_txns WHERE as_id = ?", (REGISTRATION_ID,)
        ).fetchall()
    messages = {
        event_id: (position, json.loads(raw)["content"]["body"]) for event_id, position, raw in rows
    }
    pending = {event_id for (ids,) in txns for event_id in json.loads(ids)}
    return _SynapseSnapshot(messages, int(handled), pending, int(newest_ts))


def _integrity(database: Path) -> str:
    with _read_only(database) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def _check_restored_files(
    restored: RunningDeployment,
    room: str,
    original: list[Recorded],
    before: set[int],
    begun: int,
    stored_before: Callable[[int], set[str]],
) -> _SynapseSnapshot:
    """What a restore of a backup taken mid-write holds, before anything runs on it."""
    data = restored.deployment.data_dir
    databases = sorted(p for p in data.rglob("*.db") if p.read_bytes()[:16] == SQLITE_MAGIC)
    homeserver_db = restored.layout.homeserver("internal").sqlite_database
    assert {homeserver_db, restored.layout.store_database} <= set(databases)
    assert {str(p): _integrity(p) for p in databases} == {str(p): "ok" for p in databases}

    # Synapse's copy: each message whole or absent; all stored before the backup began.
    synapse = _synapse_snapshot(homeserver_db, room)
    numbers = [_number(body) for _, body in synapse.messages.values()]
    assert len(set(numbers)) == len(numbers)
    assert before <= set(numbers), "messages stored before the backup began are missing"
    assert max(numbers) < begun, "a message begun after the backup ended is there"

    # The store's copy holds whole transactions: the original's record up to some commit,
    # and the events of one transaction (received together: one received_ts) all in
    # or all out.
    kept = recorded(restored, "internal", room)
    kept_ids = [e.event_id for e in kept]
    assert kept_ids == [e.event_id for e in original[: len(kept)]]
    assert kept, "the store's copy holds nothing of the room"
    together = {e.event_id for e in original if e.received_ts == kept[-1].received_ts}
    assert together <= set(kept_ids), "a transaction was cut in two"
    assert all(_number(e.body or "") >= 0 for e in kept if e.type == "m.room.message")

    # Against each other: what Synapse counts as delivered is in the store (else Synapse
    # would never send it again and the record would lack it for good). Seen from
    # outside too: what the bot had stored before Synapse's copy was taken (before its
    # newest event was made) is in the store's copy. And the export's cursor is not
    # past the store (else the export would skip what comes next).
    missing = synapse.acknowledged() - set(kept_ids)
    assert not missing, (
        f"{len(missing)} messages the restored Synapse counts as delivered to the bot are "
        "not in the restored store: nobody will send them again"
    )
    earlier = stored_before(synapse.newest_ts) - set(kept_ids)
    assert not earlier, (
        f"{len(earlier)} events the bot had stored before Synapse's copy was taken are not "
        "in the store's copy: the store was copied before Synapse"
    )
    cursor = json.loads(restored.layout.audit("internal").export_cursor.read_text())
    engine = open_store(restored.deployment)
    try:
        top = last_seq(engine, "internal")
    finally:
        engine.dispose()
    assert cursor["seq"] <= top, f"the export's cursor ({cursor['seq']}) is past the store ({top})"
    return synapse


async def test_backups_taken_mid_write_restore_whole_and_consistent(tmp_path: Path) -> None:
    """`homeport backup` while messages pour into a recorded room, then the restore.

    What the documentation promises (docs/deployment.md, docs/audit.md): SQLite's
    online backup copies a consistent database even mid-write; the bot answers
    Synapse only once a transaction's events are committed, one database
    transaction each; the continuous export's cursor may repeat lines, never skip
    one. So in each restore: every SQLite file is intact; each message whole or
    absent, every message stored before the backup began there; every message the
    restored Synapse counts as delivered to the bot in the restored store, which
    holds whole transactions; the export's cursor not past the store. The last
    restore is started: the messages read whole through the client API, and the
    bot records what it had not got, each event once, and what is sent next.

    Several backups, because "counts as delivered" can be read only from a copy
    that caught Synapse with a transaction out to the bot (most do, at this rate).
    """
    config = init_deployment(tmp_path / "original")

    def export(data: Any) -> None:
        data["homeservers"]["internal"]["audit"]["export"] = {"directory": "exported"}

    edit_yaml(config, export)
    running = RunningDeployment(config)
    restored: RunningDeployment | None = None
    taken: list[tuple[Path, set[int], int]] = []  # archive, stored before it, begun after
    try:
        running.start()
        context = client_ssl_context(running.deployment)
        alice = await running.new_user("internal")
        async with service_client(running.deployment, "internal") as admin:
            await admin.override_ratelimit(alice[0])  # one busy sender: an import, a bridge
        token = (await access_token(running.deployment, "internal", *alice))[0]
        base = running.deployment.homeservers["internal"].base_url
        async with SynapseClient(base, context, token) as client:
            room = await create_room(client, preset="private_chat")
            await asyncio.to_thread(homeport, "audit", "add", "-c", str(config), "internal", room)
            writer = _Writer(client, room)
            sending = asyncio.create_task(writer.run())
            watcher = _StoreWatcher(running, room)
            watcher.start()
            # The bot is recording while the backups run.
            await wait_recorded_async(
                running, "internal", room, lambda e: len(bodies(e)) >= 30, timeout=120
            )
            for n in range(BACKUPS):
                archive = tmp_path / f"midwrite-{n}.tar.gz"
                before = set(writer.stored)
                await asyncio.to_thread(
                    homeport, "backup", "-c", str(config), "--out", str(archive), timeout=300
                )
                taken.append((archive, before, writer.begun))
            writer.stop.set()
            await sending
            watcher.done.set()
            await asyncio.to_thread(watcher.join)
        sent = set(writer.stored.values())
        # Everything the original recorded, in commit order (each restored store must be
        # a beginning of it).
        original = await wait_recorded_async(
            running, "internal", room, lambda e: sent <= {x.event_id for x in e}, timeout=120
        )
        running.stop()

        caught = 0
        for n, (archive, before, begun) in enumerate(taken):
            target = tmp_path / f"restored-{n}"
            homeport("restore", str(archive), "--to", str(target), timeout=300)
            restored = RunningDeployment(target / "homeport.yaml")
            synapse = _check_restored_files(
                restored, room, original, before, begun, watcher.stored_before
            )
            caught += bool(synapse.acknowledged())
        print(f"{caught} of {BACKUPS} copies caught Synapse with a transaction out to the bot")
        assert restored is not None

        restored.start()
        messages = await _room_messages(restored, context, alice, room)
        assert {e for e, _ in messages} == set(synapse.messages)
        assert sorted(_number(body) for _, body in messages) == sorted(
            _number(body) for _, body in synapse.messages.values()
        )
        # The restored bot goes on: what the restored Synapse had not handed on, or had
        # had answered, is recorded, each event once, and so is a new message.
        token = (await access_token(restored.deployment, "internal", *alice))[0]
        async with SynapseClient(base, context, token) as client:
            after = await text(client, room, "after the restore")
        record = await wait_recorded_async(
            restored, "internal", room, lambda e: after in {x.event_id for x in e}, timeout=180
        )
        ids = [e.event_id for e in record]
        assert len(set(ids)) == len(ids), "an event was recorded twice"
        lost = (synapse.acknowledged() | synapse.not_handed_on()) - set(ids)
        assert not lost, f"{len(lost)} messages of the restored room were never recorded"
        # The continuous export goes on after its cursor, skipping nothing new.
        cursor = json.loads(restored.layout.audit("internal").export_cursor.read_text())
        await asyncio.to_thread(
            _wait_exported,
            restored.config_path.parent / "exported",
            {e.event_id for e in record if e.seq > cursor["seq"]},
        )
    finally:
        for deployment in (running, restored):
            if deployment is not None:
                if deployment.process is not None:
                    deployment.stop()
                deployment.kill_leftovers()


async def _room_messages(
    running: RunningDeployment, context: ssl.SSLContext, user: tuple[str, str], room: str
) -> list[tuple[str, str]]:
    """(event ID, body) of every message in `room`, oldest first, as `user` reads them."""
    token = (await access_token(running.deployment, "internal", *user))[0]
    base = running.deployment.homeservers["internal"].base_url
    found: list[tuple[str, str]] = []
    async with SynapseClient(base, context, token) as client:
        params = {"dir": "b", "limit": "500"}
        while True:
            page = await client.request(
                "GET", f"/_matrix/client/v3/rooms/{quote(room)}/messages", params=params
            )
            found += [
                (e["event_id"], e["content"]["body"])
                for e in page["chunk"]
                if e["type"] == "m.room.message"
            ]
            if not page["chunk"] or "end" not in page:
                break
            params["from"] = page["end"]
    return found[::-1]


def _wait_exported(folder: Path, wanted: set[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        written = {
            json.loads(line)["event_id"]
            for path in folder.glob("audit-internal-*.jsonl")
            for line in path.read_text().splitlines()
        }
        if wanted <= written:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"waited {timeout} s for the restored export to write {len(wanted - written)} "
                "events recorded after its cursor"
            )
        time.sleep(0.3)
