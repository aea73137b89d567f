"""Synapse's logcontexts around the Homeport module: no misuse of ours in Synapse's log.

A module that breaks Synapse's logcontext rules (awaiting a Deferred that
does not follow them, fire-and-forget work in a request's context, a
background task without its own context) makes Synapse log "Re-starting
finished log context", "Called stop on logcontext ... without recording a
start rusage", "Expected logging context ... was lost" and the like, and
charges the work to the wrong request in Synapse's metrics.

Synapse logs the first two by itself whenever a module registers an
`on_new_event` callback (a module whose callback does nothing gets the same
count; without any such callback, none): it runs the notification of new
events in the background with `run_in_background(_notify)` from inside
`@measure_func("handle_new_client_event")`, and `on_new_event` first reads the
event and the room's state, so the notification outlives the Measure block's
logcontext (element-hq/synapse#13090). So the module registers none: the audit
rules follow invites and upgrades from `check_event_allowed`.

So: neither the module's own requests nor events sent through it (createRoom,
send, a join over federation, `audit add`, an invite the bot accepts) leave a
logcontext warning.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import ssl
from pathlib import Path
from urllib.parse import quote

import pytest

from homeport.synapse.api import SynapseApiError, SynapseClient
from homeport.synapse_module.contract import NOT_LOCAL
from tests.harness import RunningDeployment

pytestmark = pytest.mark.e2e

# '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - (?P<logger>\S+) - \d+ - (?P<level>[A-Z]+)"
    r" - (?P<request>.+?) - (?P<message>.*)$"
)
ACCESS = re.compile(r'Processed request: .*"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/')
REQUEST_CONTEXT = re.compile(r"^[A-Z]+-\d+$")  # Synapse names a request's context METHOD-N
# What Synapse logs when a logcontext is misused (logging/context.py and the Rust
# logcontext, metrics/background_process_metrics.py, util/metrics.py, storage).
MISUSE = (
    "Re-starting finished log context",
    "without recording a start rusage",
    "Re-starting already-active log context",
    "Expected logging context",
    "was lost",
    "from sentinel context",
    "did not maintain the calling logcontext",
    "Background process re-entered without a proc",
    "went backwards",
)
# element-hq/synapse#13090, by any `on_new_event` callback: see the module docstring.


def _log(running: RunningDeployment, name: str) -> Path:
    return running.layout.homeserver(name).log_file


def _offset(running: RunningDeployment, name: str) -> int:
    path = _log(running, name)
    return path.stat().st_size if path.exists() else 0


def _lines_since(running: RunningDeployment, name: str, offset: int) -> list[dict[str, str]]:
    with _log(running, name).open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", errors="replace")
    return [m.groupdict() for m in map(LINE.match, text.splitlines()) if m is not None]


def _misuse(lines: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        line
        for line in lines
        if line["level"] in ("WARNING", "ERROR", "CRITICAL")
        and any(mark in line["message"] for mark in MISUSE)
    ]


def _requests(lines: list[dict[str, str]]) -> dict[str, str]:
    """Request context -> "METHOD path" of every request the access log shows."""
    found = {}
    for line in lines:
        if not line["logger"].startswith("synapse.access"):
            continue
        match = ACCESS.search(line["message"])
        if match is not None:
            found[line["request"]] = f"{match['method']} {match['path']}"
    return found


def _show(lines: list[dict[str, str]]) -> str:
    return "\n".join(f"{line['request']}: {line['message']}" for line in lines[:20])


async def _settled() -> None:
    """Synapse logs a finished context's restarts right after the request's own line."""
    await asyncio.sleep(2)


async def _session(
    running: RunningDeployment, name: str, admin: bool, context: ssl.SSLContext
) -> tuple[str, SynapseClient]:
    user_id, token, _ = await running.new_session(name, admin=admin)
    return user_id, SynapseClient(running.deployment.homeservers[name].base_url, context, token)


async def _an_external_room_internal_is_in(
    pair: RunningDeployment, context: ssl.SSLContext, internal: SynapseClient
) -> str:
    _, bob = await _session(pair, "external", False, context)
    async with bob:
        created = await bob.request(
            "POST", "/_matrix/client/v3/createRoom", json={"preset": "public_chat"}
        )
    room_id = str(created["room_id"])
    await internal.request(
        "POST",
        f"/_matrix/client/v3/join/{quote(room_id)}",
        params={"server_name": pair.deployment.homeservers["external"].server_name},
        json={},
    )
    return room_id


async def test_the_module_s_own_requests_leave_no_logcontext_warning(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    """Every module endpoint, and `audit add` where it sends no event (refused, already)."""
    admin_id, root = await _session(pair, "internal", True, pair_ssl)
    async with root:
        local = str(
            (
                await root.request(
                    "POST", "/_matrix/client/v3/createRoom", json={"preset": "private_chat"}
                )
            )["room_id"]
        )
        remote = await _an_external_room_internal_is_in(pair, pair_ssl, root)
        added = await root.request(
            "POST", "/_homeport/v1/audit/add", json={"room": local, "by": admin_id}
        )
        assert added["already"] is False, added
        await _settled()

        offset = _offset(pair, "internal")
        external = pair.deployment.homeservers["external"].server_name
        for path, params in (
            ("/_homeport/v1/delivery", {}),
            ("/_homeport/v1/background_updates", {}),
            ("/_homeport/v1/destinations", {"also": "elsewhere.example.org"}),
            ("/_homeport/v1/destinations", {"order_by": "undelivered_since"}),
            ("/_homeport/v1/destination_room_counts", {"destination": external}),
            ("/_homeport/v1/room_member", {"room_id": local, "user_id": admin_id}),
        ):
            await root.request("GET", path, params=params)
        again = await root.request(
            "POST", "/_homeport/v1/audit/add", json={"room": local, "by": admin_id}
        )
        assert again["already"] is True, again
        with pytest.raises(SynapseApiError) as refused:
            await root.request(
                "POST", "/_homeport/v1/audit/add", json={"room": remote, "by": admin_id}
            )
        assert refused.value.errcode == NOT_LOCAL
        await _settled()

    lines = _lines_since(pair, "internal", offset)
    ours = {rid: what for rid, what in _requests(lines).items() if "/_homeport/v1/" in what}
    assert len(ours) == 8, ours  # every request above reached the log
    misuse = [line for line in _misuse(lines) if line["request"] in ours]
    assert misuse == [], f"the module broke Synapse's logcontext rules:\n{_show(misuse)}"


async def test_events_sent_through_the_module_leave_no_logcontext_warning(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    """createRoom, send, a join over federation, `audit add`: no logcontext warning on
    either homeserver (with an `on_new_event` callback, about 190 in a few minutes)."""
    offsets = {name: _offset(pair, name) for name in ("internal", "external")}
    admin_id, alice = await _session(pair, "internal", True, pair_ssl)
    async with alice:
        board = str(
            (
                await alice.request(
                    "POST", "/_matrix/client/v3/createRoom", json={"preset": "private_chat"}
                )
            )["room_id"]
        )
        added = await alice.request(
            "POST", "/_homeport/v1/audit/add", json={"room": board, "by": admin_id}
        )
        assert added["already"] is False, added
        lobby = await _an_external_room_internal_is_in(pair, pair_ssl, alice)
        for room in (board, lobby, board):
            await alice.request(
                "PUT",
                f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/"
                f"{secrets.token_hex(8)}",
                json={"msgtype": "m.text", "body": "minutes"},
            )
        await _settled()

    for name, offset in offsets.items():
        misuse = _misuse(_lines_since(pair, name, offset))
        assert misuse == [], f"{name}: logcontext warnings:\n{_show(misuse)}"
