"""Rooms that mix servers: a closed homeserver's users in rooms with servers it shuts out.

`federation_domain_whitelist` stops requests between servers, not room membership
(docs/visibility.md, "Rooms that mix servers"): this finds the rooms where it happened,
and the joins that never completed (the hang Homeport's key servers prevent, back when
an administrator's own `trusted_key_servers` undoes them). `findings` is pure (the
module's report in, findings out); `mixed_room_drift` asks every homeserver with a
whitelist, as Homeport's service account.
"""

from __future__ import annotations

import asyncio
import ssl

from homeport.config.deployment import Deployment
from homeport.policy.effective import effective_whitelist
from homeport.policy.lint.findings import Finding, KeyPath
from homeport.synapse.models import MixedRoomsReport
from homeport.synapse.service_account import service_client

WHITELIST: KeyPath = ("policy", "federation_domain_whitelist")
SHOWN = 5  # rooms named in one finding; the rest are counted


def _label(room_id: str, name: str | None) -> str:
    return f"{name} ({room_id})" if name else room_id


def findings(deployment: Deployment, name: str, report: MixedRoomsReport) -> list[Finding]:
    """What homeserver `name`'s report says against its whitelist."""
    found: list[Finding] = []
    servers = sorted({s for room in report.rooms for s in room.servers})
    if report.rooms:
        rooms = "; ".join(
            f"{_label(r.room_id, r.name)}: {', '.join(r.servers)}" for r in report.rooms[:SHOWN]
        )
        more = report.total - min(len(report.rooms), SHOWN)
        found.append(
            Finding(
                "mixed-rooms",
                "warning",
                name,
                WHITELIST,
                f"{report.total} room(s) of {name}'s users hold users of servers {name} does "
                f"not federate with ({', '.join(servers[:SHOWN])}): {rooms}"
                + (f"; and {more} more" if more > 0 else ""),
                f"{name}'s users read those rooms (what reaches {name} through its siblings) "
                "and what they say there reaches those servers through them: the whitelist "
                "stops requests between servers, not room membership.",
                "if they should not meet, have them leave those rooms, or close the "
                "siblings' whitelists to the servers this one may talk to",
            )
        )
    if report.unfinished:
        rooms = "; ".join(_label(r, n) for r, n in report.unfinished[:SHOWN])
        found.append(
            Finding(
                "mixed-room-join-unfinished",
                "error",
                name,
                ("synapse", "trusted_key_servers"),
                f"{len(report.unfinished)} room(s) joined by {name}'s users are still "
                f"incomplete (partial state): {rooms}",
                "Synapse completes a join by checking every event's signature; a server it "
                "may not ask for its key leaves the room hanging: its messages and members "
                "never load.",
                "let Homeport choose the key servers (remove synapse.trusted_key_servers), "
                "then `homeport restart` this homeserver",
            )
        )
    return found


async def mixed_room_drift(deployment: Deployment, context: ssl.SSLContext) -> list[Finding]:
    """Every homeserver with a whitelist, asked at once."""

    async def one(name: str, allowed: list[str]) -> list[Finding]:
        async with service_client(deployment, name, context) as admin:
            return findings(deployment, name, await admin.mixed_rooms(allowed))

    closed = {
        name: allowed
        for name in deployment.homeservers
        if (allowed := effective_whitelist(deployment, name)) is not None
    }
    answers = await asyncio.gather(*(one(n, a) for n, a in closed.items()))
    return [finding for found in answers for finding in found]
