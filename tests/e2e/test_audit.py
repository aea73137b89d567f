"""The audit bot on the starter as `homeport init` writes it (Homeport's own rate limits)."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any
from urllib.parse import quote

import pytest

from homeport.audit.records import MARK
from homeport.audit.store import Recorded
from homeport.synapse.api import SynapseClient
from homeport.synapse.service_account import service_client
from homeport.synapse_module.contract import INTEGRITY_EVENT, NOT_LOCAL
from homeport.trust import client_ssl_context
from tests.audit_helpers import (
    bodies,
    client_for,
    create_room,
    export_lines,
    membership,
    recorded,
    send,
    text,
    wait_recorded_async,
)
from tests.harness import RunningDeployment, homeport, status_json

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def context(pair: RunningDeployment) -> ssl.SSLContext:
    return client_ssl_context(pair.deployment)


def cli(running: RunningDeployment, *args: str, check: bool = True) -> str:
    result = homeport(*args, "-c", str(running.config_path), check=check)
    return result.stdout + result.stderr


async def test_a_local_room_is_recorded_in_order_with_edits_and_redactions(
    pair: RunningDeployment, context: ssl.SSLContext
) -> None:
    alice, client = await client_for(pair, "internal", context)
    bot = pair.deployment.homeservers["internal"].audit_user_id
    async with client:
        room = await create_room(client, name="Board", preset="private_chat")
        await text(client, room, "said before recording")
        added = await asyncio.to_thread(cli, pair, "audit", "add", "internal", room)
        assert f"now records {room}" in added

        # Members see it: the bot's display name and the mark in its member event.
        member = await client.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.member/{bot}"
        )
        assert member["displayname"] == "Audit bot (recording)"
        assert member[MARK]["recording"] is True
        assert "homeport audit" in member[MARK]["added_by"]

        first = await text(client, room, "first")
        second = await text(client, room, "second")
        await send(
            client,
            room,
            {
                "msgtype": "m.text",
                "body": "* first, edited",
                "m.new_content": {"msgtype": "m.text", "body": "first, edited"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": first},
            },
        )
        await send(
            client,
            room,
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}},
            kind="m.reaction",
        )
        await client.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room)}/redact/{quote(second)}/r1",
            json={"reason": "oops"},
        )
        await text(client, room, "last")

    events = await wait_recorded_async(pair, "internal", room, lambda e: "last" in bodies(e))
    assert bodies(events) == ["first", "second", "first, edited", "last"]
    assert "said before recording" not in bodies(events)
    by_type = {e.type: e for e in events}
    assert by_type["m.reaction"].relates_to == first
    assert by_type["m.room.redaction"].redacts == second
    assert [e.sender for e in events if e.type == "m.room.message"] == [alice] * 4
    assert all(e.received_ts >= e.origin_server_ts - 5_000 for e in events)
    assert len({e.event_id for e in events}) == len(events)

    exported = export_lines(cli(pair, "audit", "export", "internal", "--room", room))
    assert [e["event_id"] for e in exported] == [e.event_id for e in events]
    assert exported[-1]["body"] == "last"
    as_csv = cli(pair, "audit", "export", "internal", "--room", room, "--format", "csv")
    assert as_csv.splitlines()[0].startswith("seq,time,event_id")
    assert len(as_csv.splitlines()) == len(events) + 1

    listed = cli(pair, "audit", "list", "internal", "--json")
    rooms = {r["room_id"]: r for r in json.loads(listed)}
    assert rooms[room]["events"] == len(events)
    assert "homeport audit" in rooms[room]["added_by"]
    audit = status_json(pair.config_path)["homeservers"]["internal"]["audit"]
    assert audit["user_id"] == bot
    assert audit["registered"] is True
    # Exactly what `audit list` says (this deployment's other rooms included).
    assert audit["audited_rooms"] == len(rooms)

    removed = await asyncio.to_thread(cli, pair, "audit", "remove", "internal", room)
    assert f"stopped recording {room}" in removed
    assert room not in cli(pair, "audit", "list", "internal", "--json")


async def test_a_room_created_elsewhere_is_refused_by_every_path(
    pair: RunningDeployment, context: ssl.SSLContext
) -> None:
    deployment = pair.deployment
    external = deployment.homeservers["external"].server_name
    bot = deployment.homeservers["internal"].audit_user_id
    assert bot is not None
    _, bob = await client_for(pair, "external", context)
    _, alice = await client_for(pair, "internal", context)
    _, root = await client_for(pair, "internal", context, admin=True)
    async with bob, alice, root:
        room = await create_room(bob, preset="public_chat")
        for member in (alice, root):
            await member.request(
                "POST",
                f"/_matrix/client/v3/join/{quote(room)}",
                params={"server_name": external},
                json={},
            )

        refused = await asyncio.to_thread(
            homeport,
            "audit",
            "add",
            "-c",
            str(pair.config_path),
            "internal",
            room,
            check=False,
        )
        assert refused.returncode == 1
        assert f"created on {external}" in refused.stderr
        assert "nothing changed" in refused.stderr
        assert room not in cli(pair, "audit", "list", "internal", "--json")

        # Straight through the client API, as Element would: a user, a server admin.
        for inviter in (alice, root):
            error = await membership(inviter, room, "invite", bot)
            assert error is not None
            assert (error.status, error.errcode) == (403, NOT_LOCAL)
            assert external in error.message
        # From the other server: refused by internal when the invite arrives.
        error = await membership(bob, room, "invite", bot)
        assert error is not None
        assert (error.status, error.errcode) == (403, "M_FORBIDDEN")
        assert "created on" in error.message

        members = await alice.request(
            "GET", f"/_matrix/client/v3/rooms/{quote(room)}/joined_members"
        )
        assert bot not in members["joined"]

        # "Nothing recorded" means something only once the bot is known to have been
        # given everything up to now: Synapse hands the bot its events in order, so once
        # a message sent after every attempt above is recorded, an invite or a join of
        # the bot that had slipped through would be recorded too.
        marker_room = await create_room(alice, preset="private_chat")
        await asyncio.to_thread(cli, pair, "audit", "add", "internal", marker_room)
        marker = await text(alice, marker_room, "after every refused attempt")
    await wait_recorded_async(
        pair, "internal", marker_room, lambda e: marker in {x.event_id for x in e}
    )
    assert recorded(pair, "internal", room) == []


async def test_only_a_server_admin_removes_the_bot_and_the_removal_is_recorded(
    pair: RunningDeployment, context: ssl.SSLContext
) -> None:
    bot = pair.deployment.homeservers["internal"].audit_user_id
    assert bot is not None
    root_id, root = await client_for(pair, "internal", context, admin=True)
    alice_id, alice = await client_for(pair, "internal", context)
    async with root, alice:
        # Alice is a room admin (power 100), not a server admin.
        room = await create_room(
            root,
            preset="private_chat",
            invite=[alice_id],
            power_level_content_override={"users": {alice_id: 100}},
        )
        await alice.request("POST", f"/_matrix/client/v3/join/{quote(room)}", json={})
        await asyncio.to_thread(cli, pair, "audit", "add", "internal", room)

        for action in ("kick", "ban"):
            error = await membership(alice, room, action, bot)
            assert error is not None
            assert (error.status, error.errcode) == (403, "M_FORBIDDEN")
            assert "Only server administrators can remove the audit bot" in error.message
        # Nor can a non-admin invite it back into a room it is not in.
        assert await membership(root, room, "kick", bot) is None

        error = await membership(alice, room, "invite", bot)
        assert error is not None
        assert (error.status, error.errcode) == (403, "M_FORBIDDEN")
        assert "Only server administrators add the audit bot" in error.message
        # A server admin's invite from a client is followed: the bot joins by itself.
        assert await membership(root, room, "invite", bot) is None

    def bot_memberships(events: list[Recorded]) -> list[str]:
        return [
            str(e.content.get("membership"))
            for e in events
            if e.type == "m.room.member" and e.state_key == bot
        ]

    def joined_again(events: list[Recorded]) -> bool:
        return bot_memberships(events)[-1:] == ["join"] and "leave" in bot_memberships(events)

    events = await wait_recorded_async(pair, "internal", room, joined_again)
    # Added, kicked by the server admin (the refused kick and ban left no trace), invited
    # back by them and joined: exactly these, in this order.
    assert bot_memberships(events) == ["invite", "join", "leave", "invite", "join"]
    kick = next(e for e in events if e.state_key == bot and e.content.get("membership") == "leave")
    assert kick.sender == root_id
    listed = json.loads(cli(pair, "audit", "list", "internal", "--json"))
    assert {r["room_id"]: r["added_by"] for r in listed}[room] == root_id


async def _bot_member(client: SynapseClient, room: str, bot: str) -> dict[str, Any]:
    path = f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.member/{quote(bot)}"
    return dict(await client.request("GET", path))


async def test_the_bots_name_and_mark_survive_a_rename_through_the_admin_api(
    pair: RunningDeployment, context: ssl.SSLContext
) -> None:
    """A server admin renames the bot: its member event in a recorded room keeps the name
    and mark Homeport gave it, its profile is set back, and the room (and so the record)
    holds an integrity event saying what was undone."""
    bot = pair.deployment.homeservers["internal"].audit_user_id
    assert bot is not None
    _alice, client = await client_for(pair, "internal", context)
    async with client, service_client(pair.deployment, "internal") as admin:
        room = await create_room(client, name="Payroll", preset="private_chat")
        await asyncio.to_thread(cli, pair, "audit", "add", "internal", room)
        await admin.client.request(
            "PUT", f"/_synapse/admin/v2/users/{quote(bot)}", json={"displayname": "Alice"}
        )
        events = await wait_recorded_async(
            pair, "internal", room, lambda e: any(r.type == INTEGRITY_EVENT for r in e)
        )
        member = await _bot_member(client, room, bot)
        assert member["displayname"] == "Audit bot (recording)"
        assert member[MARK]["recording"] is True
        assert "homeport audit" in member[MARK]["added_by"]  # the original mark, kept
        integrity = next(e for e in events if e.type == INTEGRITY_EVENT)
        assert integrity.sender == bot
        assert integrity.content["attempted"] != integrity.content["restored"]
        assert integrity.content["restored"]["displayname"] == "Audit bot (recording)"
        assert integrity.content["restored"][MARK] == member[MARK]

        async def profile_name() -> object:
            body = await admin.client.request(
                "GET", f"/_matrix/client/v3/profile/{quote(bot)}/displayname"
            )
            return body.get("displayname")

        deadline = time.monotonic() + 60
        while (name := await profile_name()) != "Audit bot (recording)":
            if time.monotonic() > deadline:
                raise AssertionError(f"waited 60 s for the bot's profile name back; {name!r}")
            await asyncio.sleep(0.3)
        exported = export_lines(cli(pair, "audit", "export", "internal", "--room", room))
        assert INTEGRITY_EVENT in [e["type"] for e in exported]


async def test_a_tombstone_that_is_no_upgrade_leads_the_bot_nowhere(
    pair: RunningDeployment, context: ssl.SSLContext
) -> None:
    """A room admin (no server admin) of a recorded room points its tombstone at someone
    else's direct chat: the bot stays out of it and says so in the recorded room."""
    bot = pair.deployment.homeservers["internal"].audit_user_id
    assert bot is not None
    _alice, alice = await client_for(pair, "internal", context)
    _bob, bob = await client_for(pair, "internal", context)
    carol_id, carol = await client_for(pair, "internal", context)
    async with alice, bob, carol, service_client(pair.deployment, "internal") as admin:
        recorded_room = await create_room(alice, name="Team", preset="private_chat")
        await asyncio.to_thread(cli, pair, "audit", "add", "internal", recorded_room)
        direct = await create_room(
            bob, preset="trusted_private_chat", is_direct=True, invite=[carol_id]
        )
        await carol.request("POST", f"/_matrix/client/v3/join/{quote(direct)}", json={})
        await text(bob, direct, "just between us")
        await alice.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(recorded_room)}/state/m.room.tombstone/",
            json={"body": "moved", "replacement_room": direct},
        )
        events = await wait_recorded_async(
            pair,
            "internal",
            recorded_room,
            lambda e: any(r.type == INTEGRITY_EVENT for r in e),
        )
        said = next(e for e in events if e.type == INTEGRITY_EVENT)
        assert said.content["replacement_room"] == direct
        assert "not an upgrade" in said.content["body"]
        members = await admin.client.request(
            "GET", f"/_synapse/admin/v1/rooms/{quote(direct)}/members"
        )
        assert bot not in members["members"]
    assert recorded(pair, "internal", direct) == []
