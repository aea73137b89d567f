"""Real Matrix clients (matrix-nio) for tests, trusting the deployment's CA."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nio import AsyncClient, LoginResponse, RoomMessageText, SyncResponse


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
