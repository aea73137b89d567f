"""Driving the audit bot in tests: a user's client API, the CLI, and the store's records."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from homeport.audit import store
from homeport.audit.store import Recorded
from homeport.store.database import open_store
from homeport.synapse.api import SynapseApiError, SynapseClient
from tests.harness import (
    RunningDeployment,
    edit_yaml,
    init_deployment,
    running_deployment,
)


async def client_for(
    running: RunningDeployment, name: str, context: ssl.SSLContext, admin: bool = False
) -> tuple[str, SynapseClient]:
    """A fresh user of homeserver `name` and a client API session as them."""
    user_id, token, _ = await running.new_session(name, admin=admin)
    return user_id, SynapseClient(running.deployment.homeservers[name].base_url, context, token)


async def create_room(client: SynapseClient, **body: Any) -> str:
    created = await client.request("POST", "/_matrix/client/v3/createRoom", json=body)
    return str(created["room_id"])


async def send(
    client: SynapseClient, room_id: str, content: dict[str, Any], kind: str = "m.room.message"
) -> str:
    sent = await client.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/{kind}/{secrets.token_hex(8)}",
        json=content,
    )
    return str(sent["event_id"])


async def text(client: SynapseClient, room_id: str, body: str) -> str:
    return await send(client, room_id, {"msgtype": "m.text", "body": body})


async def membership(
    client: SynapseClient, room_id: str, action: str, user_id: str
) -> SynapseApiError | None:
    """invite / kick / ban `user_id`; the error Synapse answered, if any."""
    try:
        await client.request(
            "POST",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/{action}",
            json={"user_id": user_id},
        )
    except SynapseApiError as error:
        return error
    return None


def recorded(running: RunningDeployment, name: str, room_id: str) -> list[Recorded]:
    engine = open_store(running.deployment)
    try:
        return list(store.stream(engine, name, store.Filters(room_id=room_id)))
    finally:
        engine.dispose()


def wait_recorded(
    running: RunningDeployment,
    name: str,
    room_id: str,
    done: Callable[[list[Recorded]], bool],
    timeout: float = 60,
) -> list[Recorded]:
    deadline = time.monotonic() + timeout
    while True:
        events = recorded(running, name, room_id)
        if done(events):
            return events
        if time.monotonic() > deadline:
            summary = [(e.type, e.body) for e in events][-20:]
            raise AssertionError(f"not recorded within {timeout} s; last: {summary}")
        time.sleep(0.3)


async def wait_recorded_async(*args: Any, **kwargs: Any) -> list[Recorded]:
    return await asyncio.to_thread(wait_recorded, *args, **kwargs)


def bot_joined(bot: str) -> Callable[[list[Recorded]], bool]:
    """For `wait_recorded`: the bot's own join is in the record (it records from there)."""

    def done(events: list[Recorded]) -> bool:
        return any(e.state_key == bot and e.content.get("membership") == "join" for e in events)

    return done


def bodies(events: list[Recorded]) -> list[str]:
    return [e.body for e in events if e.type == "m.room.message" and e.body is not None]


def export_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@contextmanager
def exporting_deployment(directory: Path, max_file_size: str) -> Iterator[RunningDeployment]:
    """The starter as shipped, internal's audit bot writing its continuous export into
    `exported/` beside homeport.yaml, files changing at `max_file_size`."""
    config = init_deployment(directory)

    def continuous_export(data: Any) -> None:
        data["homeservers"]["internal"]["audit"]["export"] = {
            "directory": "exported",
            "max_file_size": max_file_size,
        }

    edit_yaml(config, continuous_export)
    with running_deployment(config) as running:
        yield running
