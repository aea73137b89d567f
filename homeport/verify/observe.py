"""What verify's probes observe, surface by surface, through the viewer's client API.

Each observer answers its surface's question (`homeport.policy.surfaces`) as
a real user of the viewer's server would find out, with the probe users and
rooms of `homeport.verify.probes`. Only a 403 counts as "not for you": any
other error proves nothing and is reported as an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from homeport.policy.surfaces import HIDDEN, NO_INTERNAL_SPACES, VISIBLE
from homeport.synapse.api import SynapseApiError
from homeport.verify.probes import SETTLE_SECONDS, PairProbe, ProbeUser

HIERARCHY_ASKS = 5
HIERARCHY_PAUSE = 0.5  # seconds: at most 2 s more for a hierarchy that stays hidden


@dataclass(frozen=True)
class Observation:
    value: str
    detail: str = ""


Observer = Callable[[PairProbe], Awaitable[Observation]]


def _refusal(error: SynapseApiError) -> str:
    """A 403 is the answer "not for you"; anything else proves nothing and is an error."""
    if error.status != 403:
        raise error
    return f"{error.status} {error}"


async def _join_refusal(probe: PairProbe, error: SynapseApiError) -> str:
    """Why a join failed, when that counts as a refusal; otherwise the error goes on.

    The target refuses with 403. When federation itself is denied (by either
    whitelist), Synapse reports only "Failed to make_join via any server", so
    that answer counts when a key query shows the denial too.
    """
    if error.status == 403:
        return f"{error.status} {error}"
    failure = (await probe.keys_query()).get("failures", {}).get(probe.target.server_name)
    if failure is not None and failure.get("status") == 403:
        return f"{error}; federation is denied: {failure.get('message', '')}"
    raise error


async def federation(probe: PairProbe) -> Observation:
    body = await probe.keys_query()
    failure = body.get("failures", {}).get(probe.target.server_name)
    if failure is None:
        return Observation("allowed", "device keys fetched over federation")
    status = failure.get("status")
    value = "denied" if status == 403 else "unreachable"
    return Observation(value, f"{status} {failure.get('message', '')}".strip())


async def device_names(probe: PairProbe) -> Observation:
    body = await probe.keys_query()
    user = probe.target.target
    devices = body.get("device_keys", {}).get(user.user_id, {})
    device = devices.get(user.device_id or "")
    if device is None:
        return Observation(HIDDEN, "the device itself is not visible")
    name = device.get("unsigned", {}).get("device_display_name")
    if name == probe.target.device_name:
        return Observation(VISIBLE, f"device named {name!r}")
    return Observation(HIDDEN, "device listed without its name")


async def profile(probe: PairProbe) -> Observation:
    user = probe.target.target
    try:
        body = await probe.viewer.searcher.client.request(
            "GET", f"/_matrix/client/v3/profile/{quote(user.user_id)}"
        )
    except SynapseApiError as error:
        return Observation(HIDDEN, _refusal(error))
    if body.get("displayname") == probe.target.target_displayname:
        return Observation(VISIBLE, f"display name {body['displayname']!r}")
    return Observation(HIDDEN, "profile without the display name")


async def public_rooms(probe: PairProbe) -> Observation:
    target = probe.target
    try:
        body = await probe.viewer.searcher.client.request(
            "POST",
            "/_matrix/client/v3/publicRooms",
            params={"server": target.server_name},
            json={"limit": 20, "filter": {"generic_search_term": target.token}},
        )
    except SynapseApiError as error:
        return Observation(HIDDEN, _refusal(error))
    listed = [room.get("room_id") for room in body.get("chunk", [])]
    if target.public_room in listed:
        return Observation(VISIBLE, "the probe room is listed")
    why = "" if target.published else " (publishing it was refused on the target)"
    return Observation(HIDDEN, f"the directory answered without the probe room{why}")


async def user_search(probe: PairProbe) -> Observation:
    async def finds(user: ProbeUser, user_id: str) -> bool:
        body = await user.client.request(
            "POST",
            "/_matrix/client/v3/user_directory/search",
            json={"search_term": probe.target.token, "limit": 50},
        )
        return any(r.get("user_id") == user_id for r in body.get("results", []))

    context = await probe.make_target_known_privately(finds, SETTLE_SECONDS)
    found = await finds(probe.viewer.searcher, probe.target.target.user_id)
    return Observation(VISIBLE if found else HIDDEN, context)


async def space_hierarchy(probe: PairProbe) -> Observation:
    target = probe.target
    client = probe.viewer.browser.client
    space = target.spaces[probe.viewer.name]
    try:
        await probe.join(client, space)
    except SynapseApiError as error:
        return Observation(HIDDEN, await _join_refusal(probe, error))
    # A homeserver with workers answers reads from a worker that may not have
    # replayed the join yet: ask again for a moment before calling it hidden.
    for attempt in range(HIERARCHY_ASKS):
        try:
            body = await client.request("GET", f"/_matrix/client/v1/rooms/{quote(space)}/hierarchy")
        except SynapseApiError as error:
            return Observation(HIDDEN, _refusal(error))
        rooms = {room.get("room_id"): room for room in body.get("rooms", [])}
        child = rooms.get(target.public_room)
        if child is not None and child.get("name") == target.public_room_name:
            return Observation(VISIBLE, "the space's child room is listed with its name")
        if attempt + 1 < HIERARCHY_ASKS:
            await asyncio.sleep(HIERARCHY_PAUSE)
    return Observation(HIDDEN, "joined, but the child room is not listed")


async def join_nonfederated(probe: PairProbe) -> Observation:
    try:
        await probe.join(probe.viewer.browser.client, probe.target.closed_room)
    except SynapseApiError as error:
        return Observation("refused", await _join_refusal(probe, error))
    return Observation("joined", "a remote user joined a non-federated room")


async def internal_spaces(probe: PairProbe) -> Observation:
    """The viewer's browser asks for a summary of each internal space of the target (what
    Synapse's room hierarchy would tell another server), then tries to join it."""
    target = probe.target
    if not target.has_internal_spaces:
        return Observation(NO_INTERNAL_SPACES, "none in homeport.yaml")
    client = probe.viewer.browser.client
    details = []
    for room_id in target.internal_roots:
        try:
            summary = await client.request(
                "GET",
                f"/_matrix/client/v1/room_summary/{quote(room_id)}",
                params={"via": target.server_name},
            )
        except SynapseApiError as error:
            if error.status not in (403, 404):
                raise
            details.append(f"summary {error.status}")
        else:
            return Observation(VISIBLE, f"{room_id} is described: {summary.get('name')!r}")
        try:
            await probe.join(client, room_id)
        except SynapseApiError as error:
            details.append(await _join_refusal(probe, error))
        else:
            return Observation(VISIBLE, f"a remote user joined internal space {room_id}")
    return Observation(HIDDEN, "; ".join(details) or "no internal space exists yet")


OBSERVERS: dict[str, Observer] = {
    "federation": federation,
    "public_rooms": public_rooms,
    "space_hierarchy": space_hierarchy,
    "profile": profile,
    "device_names": device_names,
    "user_search": user_search,
    "join_nonfederated": join_nonfederated,
    "internal_spaces": internal_spaces,
}
