"""Short-lived probe users and rooms for `homeport verify`, created and removed through APIs.

On every homeserver the run creates, with one random token in every name:
- `host`, who owns a published public room, a public space holding it for
  each other homeserver, and a public room that should be non-federated;
- `target`, the user others look at: a display name, one named device with keys;
- `searcher`, `colleague` and `browser`, who look at the other homeservers:
  the searcher shares no room with anyone, the colleague shares a private room
  with each remote target, the browser joins remote spaces.
Everything is removed afterwards: rooms purged, users deactivated and erased.

Each viewer joins a space of its own: a space that another viewer's users have
joined holds their events, and a server that may not federate with theirs
cannot check those (it cannot fetch their keys); Synapse's partial join then
never completes, and browsing the space waits for it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from homeport.config.deployment import Deployment
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.api import SynapseApiError, SynapseClient

PROBE_PREFIX = "homeport-probe"


@dataclass
class ProbeUser:
    user_id: str
    client: SynapseClient
    device_id: str | None = None


@dataclass
class ServerProbe:
    """One homeserver's probe objects; it plays target for others and viewer of others."""

    name: str
    server_name: str
    token: str
    admin: SynapseAdmin  # Homeport's service account; probe users' clients share its pool
    # By role; filled in as they are created, so that cleanup finds every one.
    by_role: dict[str, ProbeUser] = field(default_factory=dict)
    public_room: str = ""
    published: bool = False
    spaces: dict[str, str] = field(default_factory=dict)  # by the viewing homeserver
    closed_room: str = ""
    rooms: list[str] = field(default_factory=list)
    joined: set[str] = field(default_factory=set)  # other servers' rooms our users joined
    # Its internal spaces (homeport.yaml's), as rooms that exist now: looked at, never made.
    has_internal_spaces: bool = False
    internal_roots: list[str] = field(default_factory=list)

    @property
    def target_displayname(self) -> str:
        return f"Homeport probe {self.token}"

    @property
    def device_name(self) -> str:
        return f"Homeport probe device {self.token}"

    @property
    def public_room_name(self) -> str:
        return f"Homeport probe room {self.token}"

    @property
    def users(self) -> list[ProbeUser]:
        return list(self.by_role.values())

    @property
    def host(self) -> ProbeUser:
        return self.by_role["host"]

    @property
    def target(self) -> ProbeUser:
        return self.by_role["target"]

    @property
    def searcher(self) -> ProbeUser:
        return self.by_role["searcher"]

    @property
    def colleague(self) -> ProbeUser:
        return self.by_role["colleague"]

    @property
    def browser(self) -> ProbeUser:
        return self.by_role["browser"]


@dataclass
class PairProbe:
    """The viewer's users looking at the target's objects."""

    viewer: ServerProbe
    target: ServerProbe
    can_share: bool
    target_creates_shared_room: bool
    # The viewer's directory takes in remote users who share a public room, so
    # the user search control (a colleague finding the target) must succeed.
    control_must_find: bool = True
    _keys: asyncio.Task[dict[str, Any]] | None = field(default=None, repr=False)

    async def keys_query(self) -> dict[str, Any]:
        """The viewer's searcher asking for the target user's device keys, once per pair.

        Several surfaces read it (reachability, device names, why a join failed);
        the first asks over federation, the others share the answer.
        """
        if self._keys is None:
            self._keys = asyncio.ensure_future(
                self.viewer.searcher.client.request(
                    "POST",
                    "/_matrix/client/v3/keys/query",
                    json={"device_keys": {self.target.target.user_id: []}, "timeout": 5000},
                )
            )
        return await self._keys

    async def join(self, client: SynapseClient, room_id: str) -> None:
        self.viewer.joined.add(room_id)
        await client.request(
            "POST",
            f"/_matrix/client/v3/join/{quote(room_id)}",
            params={"server_name": self.target.server_name},
            json={},
        )

    async def _create_federated_room(self, owner: ProbeUser, preset: str) -> str:
        body = await owner.client.request(
            "POST",
            "/_matrix/client/v3/createRoom",
            json={"preset": preset, "creation_content": {"m.federate": True}},
        )
        room_id = str(body["room_id"])
        mine = owner in self.target.users
        (self.target if mine else self.viewer).rooms.append(room_id)
        return room_id

    async def _join_room(self, user: ProbeUser, room_id: str, owner_is_target: bool) -> None:
        """Join `room_id`, created by the side `owner_is_target` names."""
        owner_server = self.target if owner_is_target else self.viewer
        if user not in owner_server.users:
            (self.viewer if owner_is_target else self.target).joined.add(room_id)
        await user.client.request(
            "POST",
            f"/_matrix/client/v3/join/{quote(room_id)}",
            params={"server_name": owner_server.server_name},
            json={},
        )

    async def make_target_known_privately(self, finds: FindsUser, settle: float) -> str:
        """Make the viewer's server know the target user only from a private room.

        Remote users enter a server's user directory when they join a public room
        it is in (from a private room only after a profile refresh a minute later).
        So: the viewer's colleague and the target user meet in a public room, the
        directory takes the target in, the room turns invite-only, and a marker
        user joins another room afterwards: once the marker is found, the change
        to invite-only has been processed too (the directory works in order).
        Returns what happened, for the report.
        """
        if not self.can_share:
            return "the two servers cannot share a room"
        target_owns = self.target_creates_shared_room
        colleague, target = self.viewer.colleague, self.target.target
        owner = target if target_owns else colleague
        # The beacon room must never hold the target user: it stays public.
        beacon_owner = self.target.host if target_owns else colleague
        marker = self.target.browser if target_owns else self.target.host
        shared = await self._create_federated_room(owner, "public_chat")
        beacon = await self._create_federated_room(beacon_owner, "public_chat")
        await self._join_room(target if owner is colleague else colleague, shared, target_owns)
        if beacon_owner is not colleague:
            await self._join_room(colleague, beacon, target_owns)
        found = await _eventually(lambda: finds(colleague, target.user_id), settle)
        if not found and self.control_must_find:
            # Seen under load: the directory passed over the target's join. A fresh
            # member event (the same profile) is another chance to take them in.
            await target.client.request(
                "PUT",
                f"/_matrix/client/v3/rooms/{quote(shared)}/state/m.room.member/"
                f"{quote(target.user_id)}",
                json={"membership": "join", "displayname": self.target.target_displayname},
            )
            found = await _eventually(lambda: finds(colleague, target.user_id), CATCH_UP_SECONDS)
        if not found:
            if self.control_must_find:
                raise ControlFailedError(
                    "the control failed: a colleague sharing a public room with the target "
                    "user does not find them either, so a miss would prove nothing"
                )
            return "the colleague does not find the target user either (as the policy says)"
        await owner.client.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(shared)}/state/m.room.join_rules/",
            json={"join_rule": "invite"},
        )

        async def closed_on_viewer() -> bool:
            state = await colleague.client.request(
                "GET", f"/_matrix/client/v3/rooms/{quote(shared)}/state/m.room.join_rules/"
            )
            return bool(state.get("join_rule") == "invite")

        # These two always happen, only late on a busy server: waiting longer costs
        # nothing when they are quick, and a directory still behind would report
        # the target as found through the room that is no longer public.
        if not await _eventually(closed_on_viewer, CATCH_UP_SECONDS):
            return "the room did not turn invite-only on the viewer's server"
        await self._join_room(marker, beacon, target_owns)
        if not await _eventually(lambda: finds(colleague, marker.user_id), CATCH_UP_SECONDS):
            return "the viewer's user directory did not catch up"
        return "the target user shares only a private room with a colleague"


FindsUser = Callable[["ProbeUser", str], Awaitable[bool]]


class ControlFailedError(Exception):
    """A probe's own control did not work: its observation would prove nothing."""


SETTLE_SECONDS = 5.0  # how long a user the policy hides is looked for
CATCH_UP_SECONDS = 30.0  # how long for what must happen (a join rule, a directory update)


async def _eventually(condition: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Poll `condition` with growing pauses (0.1 s to 0.5 s) until true or `timeout`."""
    deadline = time.monotonic() + timeout
    pause = 0.1
    while not await condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.5)
    return True


def _fake_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")


ROLES = ("host", "target", "searcher", "colleague", "browser")


async def _create_user(probe: ServerProbe, role: str) -> None:
    user_id = f"@{PROBE_PREFIX}-{probe.token}-{role}:{probe.server_name}"
    # Only the target logs in (it needs a device); the others get no password, so
    # nobody can log in as them and Synapse spends no password hash on them (a
    # third of a second of CPU each at its default cost).
    password = secrets.token_urlsafe(24) if role == "target" else None
    displayname = probe.target_displayname if role == "target" else f"Homeport {role}"
    # Known to cleanup before Synapse creates it: an interrupted run can never
    # leave it behind. Until it has a token it acts as nobody.
    user = ProbeUser(user_id, probe.admin.client.as_user(""))
    probe.by_role[role] = user
    await probe.admin.put_user(user_id, displayname, password)
    # Probes come in bursts that Synapse's per-user limits are not meant for.
    await probe.admin.override_ratelimit(user_id)
    if password is not None:
        # A real login gives a device, which can carry keys and a display name.
        login = await probe.admin.client.login(user_id, password, probe.device_name)
        user.client = probe.admin.client.as_user(login.access_token)
        user.device_id = login.device_id
    else:
        user.client = probe.admin.client.as_user(await probe.admin.login_as(user_id))


async def _upload_device_keys(user: ProbeUser) -> None:
    device = user.device_id or ""
    await user.client.request(
        "POST",
        "/_matrix/client/v3/keys/upload",
        json={
            "device_keys": {
                "user_id": user.user_id,
                "device_id": device,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                "keys": {f"curve25519:{device}": _fake_key(), f"ed25519:{device}": _fake_key()},
                "signatures": {user.user_id: {f"ed25519:{device}": _fake_key()}},
            }
        },
    )


async def _create_room(probe: ServerProbe, body: dict[str, Any]) -> str:
    answer = await probe.host.client.request("POST", "/_matrix/client/v3/createRoom", json=body)
    room_id = str(answer["room_id"])
    probe.rooms.append(room_id)
    return room_id


async def _listed_locally(probe: ServerProbe) -> bool:
    """Whether the target's own directory lists the probe room yet (stats are indexed later)."""
    body = await probe.host.client.request(
        "POST",
        "/_matrix/client/v3/publicRooms",
        json={"limit": 20, "filter": {"generic_search_term": probe.token}},
    )
    return any(room.get("room_id") == probe.public_room for room in body.get("chunk", []))


async def set_up_server(deployment: Deployment, probe: ServerProbe) -> None:
    """Create the probe users and rooms of one homeserver, recording each as it is made."""
    hs = deployment.homeservers[probe.name]
    token = probe.token
    created = await asyncio.gather(
        *(_create_user(probe, role) for role in ROLES),
        return_exceptions=True,
    )
    for failure in created:
        if isinstance(failure, BaseException):
            raise failure
    await _upload_device_keys(probe.target)
    if hs.policy.rooms.internal_spaces:
        probe.has_internal_spaces = True
        report = await probe.admin.internal_spaces()
        probe.internal_roots = [room for room in report.spaces.values() if room is not None]
    never = hs.policy.rooms.federation == "never"
    # On a `never` server the rooms are created as a client that does not care
    # would create them; the Homeport module must make them non-federated.
    federate = {} if never else {"m.federate": True}
    probe.public_room = await _create_room(
        probe,
        {
            "preset": "public_chat",
            "visibility": "public",
            "name": probe.public_room_name,
            "creation_content": federate,
        },
    )
    for viewer in deployment.homeservers:
        if viewer == probe.name:
            continue
        probe.spaces[viewer] = await _create_room(
            probe,
            {
                "preset": "public_chat",
                "name": f"Homeport probe space {token} for {viewer}",
                "creation_content": {"type": "m.space", **federate},
                "initial_state": [
                    {
                        "type": "m.space.child",
                        "state_key": probe.public_room,
                        "content": {"via": [hs.server_name]},
                    }
                ],
            },
        )
    probe.closed_room = await _create_room(
        probe,
        {
            "preset": "public_chat",
            "name": f"Homeport probe closed room {token}",
            "creation_content": {} if never else {"m.federate": False},
        },
    )
    listing = await probe.host.client.request(
        "GET", f"/_matrix/client/v3/directory/list/room/{quote(probe.public_room)}"
    )
    probe.published = listing.get("visibility") == "public"
    if probe.published and hs.policy.enable_room_list_search:
        await _eventually(lambda: _listed_locally(probe), SETTLE_SECONDS)


async def tear_down(probes: list[ServerProbe]) -> None:
    """Purge every probe room on every server that holds it, then erase the probe users."""

    async def quietly(call: Any) -> None:
        # Already gone, or the server went away: nothing left to clean.
        with contextlib.suppress(SynapseApiError, httpx.HTTPError, OSError):
            await call

    await asyncio.gather(
        *(
            quietly(probe.admin.delete_room(room))
            for probe in probes
            for room in {*probe.rooms, *probe.joined}
        )
    )
    await asyncio.gather(
        *(quietly(_erase(probe.admin, user.user_id)) for probe in probes for user in probe.users)
    )
    # A request cut short by an interruption may still have created its user.
    for probe in probes:
        with contextlib.suppress(SynapseApiError, httpx.HTTPError, OSError):
            for user_id in await probe.admin.users_named(f"{PROBE_PREFIX}-{probe.token}-"):
                await quietly(_erase(probe.admin, user_id))


async def _erase(admin: SynapseAdmin, user_id: str) -> None:
    """Synapse's rate limits back first (the override outlives the account), then erase."""
    await admin.remove_ratelimit_override(user_id)
    await admin.deactivate(user_id)


async def sweep_leftovers(admin: SynapseAdmin) -> list[str]:
    """Remove what a killed verify left behind: its probe users, their rooms, their overrides.

    Called with verify's lock held, so no other verify's probes are live. A
    room goes only when a probe user created it; the users the probes met
    elsewhere are left alone. Returns the users removed.
    """
    users = await admin.users_named(f"{PROBE_PREFIX}-")
    for user_id in users:
        for room_id in await admin.joined_rooms(user_id):
            room = await admin.room(room_id)
            if room is not None and (room.creator or "").startswith(f"@{PROBE_PREFIX}-"):
                with contextlib.suppress(SynapseApiError):
                    await admin.delete_room(room_id)
        await _erase(admin, user_id)
    return users
