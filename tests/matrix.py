"""Real Matrix clients (matrix-nio) for tests, trusting the deployment's CA."""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

from nio import (
    AsyncClient,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
)

from homeport.synapse.api import SynapseClient
from tests.harness import RunningDeployment


@asynccontextmanager
async def logged_in(
    base_url: str, user_id: str, password: str, ssl_context: ssl.SSLContext
) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(base_url, user_id, ssl=ssl_context)
    try:
        response = await client.login(password)
        assert isinstance(response, LoginResponse), response
        yield client
    finally:
        await client.close()


async def wait_for_text(
    client: AsyncClient, room_id: str, body: str, timeout: float = 60
) -> RoomMessageText:
    """Sync until a text message with `body` shows up in `room_id`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.sync(timeout=2000, full_state=False)
        if isinstance(response, SyncResponse):
            room = response.rooms.join.get(room_id)
            for event in room.timeline.events if room else []:
                if isinstance(event, RoomMessageText) and event.body == body:
                    return event
        else:
            await asyncio.sleep(0.5)
    raise AssertionError(f"{body!r} did not arrive in {room_id} within {timeout} s")


async def wait_for_room(client: AsyncClient, room_id: str, timeout: float = 60) -> None:
    """Sync until the joined room shows up, as a client waits before it shows the room.

    A remote join is partial at first (Synapse's faster joins): eager syncs leave
    the room out until the state is complete. An event sent before then, through
    a worker that has not yet seen the state completed, can carry partial state
    and get the remote's answer rejected (docs/synapse-notes.md); clients only
    show the room, and people only speak, once the sync has it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.sync(timeout=1000, full_state=False)
        if isinstance(response, SyncResponse) and room_id in response.rooms.join:
            return
        if not isinstance(response, SyncResponse):
            await asyncio.sleep(0.5)
    raise AssertionError(f"{room_id} was not in the sync within {timeout} s")


async def exchange_messages(
    running: RunningDeployment,
    ssl_context: ssl.SSLContext,
    alice: dict[str, str],
    bob: dict[str, str],
    alias: str,
) -> str:
    """Bob creates a room on external, alice joins it from internal, both speak.

    Returns the room ID. Fails unless each message arrives on the other server.
    """
    internal = running.deployment.homeservers["internal"]
    external = running.deployment.homeservers["external"]
    async with (
        logged_in(internal.base_url, alice["user_id"], alice["password"], ssl_context) as a,
        logged_in(external.base_url, bob["user_id"], bob["password"], ssl_context) as b,
    ):
        created = await b.room_create(alias=alias, name=alias, preset=RoomPreset.public_chat)
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        await b.sync(timeout=0)

        joined = await a.join(f"#{alias}:{external.server_name}")
        assert isinstance(joined, JoinResponse), joined
        assert joined.room_id == room_id
        await wait_for_room(a, room_id)

        for sender, receiver, body in (
            (a, b, "hello from internal"),
            (b, a, "hello from external"),
        ):
            sent = await sender.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": body}
            )
            assert isinstance(sent, RoomSendResponse), sent
            await wait_for_text(receiver, room_id, body)
    return room_id


async def share_a_room(pair: RunningDeployment, context: ssl.SSLContext) -> None:
    """An internal user joins a room on external and speaks: each becomes a destination."""
    deployment = pair.deployment
    internal, external = deployment.homeservers["internal"], deployment.homeservers["external"]
    tokens = {}
    for name in ("internal", "external"):
        _, tokens[name], _ = await pair.new_session(name)
    async with (
        SynapseClient(external.base_url, context, tokens["external"]) as bob,
        SynapseClient(internal.base_url, context, tokens["internal"]) as alice,
    ):
        created = await bob.request(
            "POST", "/_matrix/client/v3/createRoom", json={"preset": "public_chat"}
        )
        room_id = quote(created["room_id"])
        await alice.request(
            "POST",
            f"/_matrix/client/v3/join/{room_id}",
            params={"server_name": external.server_name},
            json={},
        )
        await alice.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{secrets.token_hex(4)}",
            json={"msgtype": "m.text", "body": "hello"},
        )
