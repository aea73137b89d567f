"""The audit bot's settings that the documentation promises and no other test checks:
the continuous export (`export:`) and `include_direct_messages: true`.

A deployment of its own, on the settings `homeport init` ships: the tests stop the
bot, change homeport.yaml and restart internal.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from homeport.audit.store import Recorded
from homeport.trust import client_ssl_context
from tests.audit_helpers import (
    bot_joined,
    client_for,
    create_room,
    export_lines,
    exporting_deployment,
    membership,
    text,
    wait_recorded_async,
)
from tests.harness import (
    RunningDeployment,
    edit_yaml,
    homeport,
)

pytestmark = pytest.mark.e2e

MAX_FILE_SIZE = 16 * 1024  # `max_file_size: 16K`: a few messages fill a file


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    with exporting_deployment(tmp_path_factory.mktemp("audit-settings"), "16K") as running:
        yield running


@pytest.fixture(scope="module")
def context(running: RunningDeployment) -> ssl.SSLContext:
    return client_ssl_context(running.deployment)


def cli(running: RunningDeployment, *args: str) -> str:
    return homeport(*args, "-c", str(running.config_path)).stdout


def utc_day() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


EXPORT_FILE = re.compile(r"^audit-internal-(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.jsonl$")


def export_files(folder: Path) -> list[Path]:
    """The export's files in the order it wrote them: by day, then `.jsonl`, `.1.jsonl`..."""

    def order(path: Path) -> tuple[str, int]:
        found = EXPORT_FILE.match(path.name)
        assert found, f"{path.name} is not named as docs/audit.md says"
        return found.group(1), int(found.group(2) or 0)

    return sorted(folder.iterdir(), key=order) if folder.exists() else []


def written_lines(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for path in export_files(folder) for line in path.read_text().splitlines()
    ]


def wait_until(done: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.2)


def wait_export_matches(
    running: RunningDeployment, folder: Path, timeout: float = 60
) -> list[dict[str, Any]]:
    """Wait until the files hold exactly what `homeport audit export` prints: every event
    recorded on internal, once each, in recording order, field for field."""
    deadline = time.monotonic() + timeout
    while True:
        expected = export_lines(cli(running, "audit", "export", "internal"))
        written = written_lines(folder)
        if written == expected:
            return written
        if time.monotonic() > deadline:
            ids = [line["event_id"] for line in written]
            raise AssertionError(
                f"waited {timeout} s for the export files to equal `homeport audit export`: "
                f"{len(written)} lines ({len(ids) - len(set(ids))} repeated) for "
                f"{len(expected)} recorded events"
            )
        time.sleep(0.5)


async def test_the_continuous_export_writes_every_event_once_into_files_of_the_day(
    running: RunningDeployment, context: ssl.SSLContext
) -> None:
    """docs/audit.md: with `export: {directory: ...}` the bot appends every recorded event
    to `audit-<homeserver>-<day>.jsonl` files, mode 0600, a new file each day and at
    `max_file_size`; a cursor resumes after a restart.

    The day is the UTC date when the bot writes the line (`datetime.now(UTC)` inside
    the bot); nothing lets a test move the bot's clock, so the change of day itself is
    not exercised here."""
    folder = running.config_path.parent / "exported"
    first_day = utc_day()
    _, alice = await client_for(running, "internal", context)
    async with alice:
        room = await create_room(alice, name="Exported", preset="private_chat")
        await asyncio.to_thread(cli, running, "audit", "add", "internal", room)
        # 25 messages of about a kilobyte each, within Homeport's message burst (30):
        # about 35 KB of lines, so the export has to start new files.
        sent = [await text(alice, room, f"line {n} " + "x" * 1000) for n in range(25)]
    await wait_recorded_async(
        running, "internal", room, lambda e: set(sent) <= {x.event_id for x in e}
    )
    written = await asyncio.to_thread(wait_export_matches, running, folder)
    assert set(sent) <= {line["event_id"] for line in written}
    last_day = utc_day()

    files = export_files(folder)
    days = {EXPORT_FILE.match(f.name).group(1) for f in files}  # type: ignore[union-attr]
    assert days <= {first_day, last_day}, days
    for day in days:  # `.jsonl`, `.1.jsonl`, `.2.jsonl`...: none skipped
        names = [f.name for f in files if f.name.startswith(f"audit-internal-{day}")]
        wanted = [f"audit-internal-{day}.jsonl"] + [
            f"audit-internal-{day}.{n}.jsonl" for n in range(1, len(names))
        ]
        assert names == wanted
    assert len(files) >= 2, [f.name for f in files]  # 35 KB in files of 16 KB
    # A file is left once it reaches the size: each but the newest holds at least
    # max_file_size, and none more than that and its last line.
    sizes = [f.stat().st_size for f in files]
    longest = max(len(line) + 1 for f in files for line in f.read_bytes().splitlines())
    assert all(size >= MAX_FILE_SIZE for size in sizes[:-1]), sizes
    assert all(size < MAX_FILE_SIZE + longest for size in sizes), (sizes, longest)
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}

    # Stopped, and events recorded while it is down: the restarted bot writes them
    # after the others, neither skipping nor repeating a line.
    _, bob = await client_for(running, "internal", context)
    async with bob:
        later = await create_room(bob, preset="private_chat")
        await asyncio.to_thread(cli, running, "audit", "add", "internal", later)
        written = await asyncio.to_thread(wait_export_matches, running, folder)
        # The cursor says how far the files go (written just after them).
        cursor = running.layout.audit("internal").export_cursor
        await asyncio.to_thread(
            wait_until,
            lambda: json.loads(cursor.read_text())["seq"] == written[-1]["seq"],
            "the export cursor to reach the last line written",
        )
        await asyncio.to_thread(homeport, "stop", "-c", str(running.config_path), "audit-internal")
        while_down = [await text(bob, later, f"while the bot is down {n}") for n in range(3)]
    await asyncio.to_thread(homeport, "start", "-c", str(running.config_path), "audit-internal")
    await wait_recorded_async(
        running, "internal", later, lambda e: set(while_down) <= {x.event_id for x in e}
    )
    again = await asyncio.to_thread(wait_export_matches, running, folder)
    assert again[: len(written)] == written  # what was written stays as it was
    assert set(while_down) <= {line["event_id"] for line in again[len(written) :]}


async def test_with_include_direct_messages_direct_chats_are_recorded_too(
    running: RunningDeployment, context: ssl.SSLContext
) -> None:
    """docs/audit.md, `auto_join: local_rooms`: direct messages are left out unless
    `include_direct_messages: true`. With it: a direct chat that existed before gets the
    bot when the homeserver starts, a new one at its creation, and a member who is no
    server admin may invite the bot into one (without it: 403, tested in
    test_audit_crash.py)."""
    bot = running.deployment.homeservers["internal"].audit_user_id
    assert bot is not None
    alice_id, alice = await client_for(running, "internal", context)
    friend_id, friend = await client_for(running, "internal", context)
    async with alice, friend:
        old_dm = await create_room(
            alice, preset="trusted_private_chat", is_direct=True, invite=[friend_id]
        )
        # What Element does for a direct chat: the room goes into m.direct.
        await alice.request(
            "PUT",
            f"/_matrix/client/v3/user/{quote(alice_id)}/account_data/m.direct",
            json={friend_id: [old_dm]},
        )
        await friend.request("POST", f"/_matrix/client/v3/join/{quote(old_dm)}", json={})

        def record_direct_messages(data: Any) -> None:
            audit = data["homeservers"]["internal"]["audit"]
            audit["auto_join"] = "local_rooms"
            audit["include_direct_messages"] = True

        edit_yaml(running.config_path, record_direct_messages)
        await asyncio.to_thread(
            homeport, "restart", "-c", str(running.config_path), "internal", timeout=180
        )
        new_dm = await create_room(
            alice, preset="trusted_private_chat", is_direct=True, invite=[friend_id]
        )
        await friend.request("POST", f"/_matrix/client/v3/join/{quote(new_dm)}", json={})
        for room in (old_dm, new_dm):
            await wait_recorded_async(running, "internal", room, bot_joined(bot))

        # Taken out by an administrator, then invited back by a member of the chat.
        removed = await asyncio.to_thread(cli, running, "audit", "remove", "internal", new_dm)
        assert f"stopped recording {new_dm}" in removed
        assert await membership(friend, new_dm, "invite", bot) is None

        def back(events: list[Recorded]) -> bool:
            mine = [e.content.get("membership") for e in events if e.state_key == bot]
            return mine[-3:] == ["leave", "invite", "join"]

        await wait_recorded_async(running, "internal", new_dm, back)
        said = {room: await text(alice, room, "just between us") for room in (old_dm, new_dm)}
    for room, event_id in said.items():
        events = await wait_recorded_async(
            running, "internal", room, lambda e, i=event_id: i in {x.event_id for x in e}
        )
        assert [e.body for e in events if e.event_id == event_id] == ["just between us"]
    listed = json.loads(cli(running, "audit", "list", "internal", "--json"))
    assert {old_dm, new_dm} <= {r["room_id"] for r in listed}
