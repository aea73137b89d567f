"""Adding and removing the audit bot: the commands' and the website's one way to do it.

The Homeport module inside Synapse does the membership change (it alone can
invite into a private room, and it refuses rooms created elsewhere); this
then waits until the bot has recorded the change in the store, so that
"added" means "recording".
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

from sqlalchemy import Engine

from homeport.audit import store
from homeport.config.deployment import Deployment
from homeport.errors import HomeportError
from homeport.synapse.api import SynapseApiError
from homeport.synapse.service_account import service_client
from homeport.synapse_module.contract import NO_INVITER, NOT_LOCAL

CONFIRM_TIMEOUT_S = 20.0


class AuditRefused(HomeportError):
    """The room cannot be audited by this homeserver's bot (nothing changed)."""


@dataclass(frozen=True)
class AuditChange:
    room_id: str
    already: bool
    inviter: str | None
    confirmed: bool  # the bot recorded the change in the store


def require_bot(deployment: Deployment, name: str) -> str:
    """The bot's user ID, or an error that says how to turn the bot on."""
    user_id = deployment.homeservers[name].audit_user_id
    if user_id is None:
        raise HomeportError(
            f"homeserver {name!r} has no audit bot; add `audit: {{port: ...}}` to it in "
            "homeport.yaml (docs/audit.md) and restart"
        )
    return user_id


def _refusal(error: SynapseApiError, room: str) -> HomeportError:
    if error.errcode in (NOT_LOCAL, NO_INVITER):
        return AuditRefused(f"refused, nothing changed: {error.message} ({room})")
    if error.status == 404:
        return AuditRefused(f"{room}: no such room on this homeserver ({error.message})")
    return HomeportError(f"{room}: Synapse refused ({error.status} {error.errcode}: {error})")


async def confirmed(
    engine: Engine, name: str, room_id: str, added: bool, timeout: float = CONFIRM_TIMEOUT_S
) -> bool:
    """Whether the bot recorded the change within `timeout`: "added" then means "recording"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rooms = await asyncio.to_thread(store.audited_rooms, engine, name)
        if any(r.room_id == room_id for r in rooms) == added:
            return True
        await asyncio.sleep(0.2)
    return False


async def change(
    deployment: Deployment,
    name: str,
    room: str,
    by: str,
    engine: Engine,
    add: bool,
    ssl_context: ssl.SSLContext | None = None,
) -> AuditChange:
    """Add (or remove) the bot; refused rooms raise AuditRefused and nothing changes."""
    require_bot(deployment, name)
    try:
        async with service_client(deployment, name, ssl_context) as admin:
            done = await (admin.audit_add if add else admin.audit_remove)(room, by)
    except SynapseApiError as error:
        raise _refusal(error, room) from error
    recorded = await confirmed(engine, name, done.room_id, add)
    return AuditChange(done.room_id, done.already, done.inviter, recorded)
