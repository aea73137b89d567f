"""What `homeport verify` checks: each surface's expectation next to its probe.

A surface answers one question about an ordered pair of homeservers: what can
the viewer's users see of the target? `expected` derives the answer from the
policy alone (pure, table-tested); `observe` asks the viewer's client API, as
a real user would, using the probe users and rooms of `homeport.policy.probes`.
Adding a surface is one class here and one line in SURFACES.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import quote

from matrix_common.regex import glob_to_regex

from homeport.config.deployment import Deployment
from homeport.config.policy import Policy
from homeport.policy.effective import federation_allowed
from homeport.policy.probes import SETTLE_SECONDS, PairProbe, ProbeUser
from homeport.synapse.api import SynapseApiError

Phase = Literal["look", "share", "join"]
VISIBLE, HIDDEN = "visible", "hidden"


@dataclass(frozen=True)
class ProbeIds:
    """The identities of the target's probe objects that an expectation may depend on."""

    host_user_id: str
    public_room_id: str


@dataclass(frozen=True)
class Observation:
    value: str
    detail: str = ""


class Surface(Protocol):
    name: str
    phase: Phase
    question: str

    def expected(self, deployment: Deployment, viewer: str, target: str, ids: ProbeIds) -> str: ...

    async def observe(self, probe: PairProbe) -> Observation: ...


def _refusal(error: SynapseApiError) -> str:
    """A 403 is the answer "not for you"; anything else proves nothing and is an error."""
    if error.status != 403:
        raise error
    return f"{error.status} {error}"


def publication_allowed(policy: Policy, user_id: str, room_id: str) -> bool:
    """Synapse's room_list_publication_rules for a room without aliases: first match wins."""
    for rule in policy.room_list_publication_rules or []:
        if not glob_to_regex(rule.user_id).match(user_id):
            continue
        if not glob_to_regex(rule.room_id).match(room_id):
            continue
        if rule.alias != "*":
            continue  # an alias pattern never matches a room without aliases
        return rule.action == "allow"
    return False


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


class FederationSurface:
    name = "federation"
    phase: Phase = "look"
    question = "Can the viewer's server reach the target's at all?"

    def expected(self, deployment: Deployment, viewer: str, target: str, ids: ProbeIds) -> str:
        return "allowed" if federation_allowed(deployment, viewer, target) else "denied"

    async def observe(self, probe: PairProbe) -> Observation:
        body = await probe.keys_query()
        failure = body.get("failures", {}).get(probe.target.server_name)
        if failure is None:
            return Observation("allowed", "device keys fetched over federation")
        status = failure.get("status")
        value = "denied" if status == 403 else "unreachable"
        return Observation(value, f"{status} {failure.get('message', '')}".strip())


class DeviceNamesSurface:
    name = "device_names"
    phase: Phase = "look"
    question = "Do the viewer's users see the display names of the target users' devices?"

    def expected(self, deployment: Deployment, viewer: str, target: str, ids: ProbeIds) -> str:
        shown = deployment.homeservers[target].policy.allow_device_name_lookup_over_federation
        return VISIBLE if federation_allowed(deployment, viewer, target) and shown else HIDDEN

    async def observe(self, probe: PairProbe) -> Observation:
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


class ProfileSurface:
    name = "profile"
    phase: Phase = "look"
    question = "Do the viewer's users see a target user's display name and avatar?"

    def expected(self, deployment: Deployment, viewer: str, target: str, ids: ProbeIds) -> str:
        target_policy = deployment.homeservers[target].policy
        viewer_policy = deployment.homeservers[viewer].policy
        limited = (
            viewer_policy.limit_profile_requests_to_users_who_share_rooms
            and viewer_policy.require_auth_for_profile_requests
        )
        allowed = (
            federation_allowed(deployment, viewer, target)
            and target_policy.allow_profile_lookup_over_federation
            and not limited  # the probe shares no room with the target user
        )
        return VISIBLE if allowed else HIDDEN

    async def observe(self, probe: PairProbe) -> Observation:
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


class PublicRoomsSurface:
    name = "public_rooms"
    phase: Phase = "look"
    question = "Do the viewer's users see rooms published in the target's room directory?"

    def expected(self, deployment: Deployment, viewer: str, target: str, ids: ProbeIds) -> str:
        target_policy = deployment.homeservers[target].policy
        visible = (
            federation_allowed(deployment, viewer, target)
            and target_policy.allow_public_rooms_over_federation
            and target_policy.enable_room_list_search
            and deployment.homeservers[viewer].policy.enable_room_list_search
            # Synapse serves only federated rooms over federation.
            and target_policy.rooms.federation != "never"
            and publication_allowed(target_policy, ids.host_user_id, ids.public_room_id)
        )
        return VISIBLE if visible else HIDDEN

    async def observe(self, probe: PairProbe) -> Observation:
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


class UserSearchSurface:
    name = "user_search"
    phase: Phase = "share"
    question = (
        "Do the viewer's users find a target user whom their server knows only from "
        "a private room with a colleague?"
    )

    def expected(self, deployment: Deployment, viewer: str, target: str, ids: ProbeIds) -> str:
        directory = deployment.homeservers[viewer].policy.user_directory
        visible = (
            can_share_room(deployment, viewer, target)
            and directory.enabled
            and not directory.exclude_remote_users
            and directory.search_all_users
        )
        return VISIBLE if visible else HIDDEN

    async def observe(self, probe: PairProbe) -> Observation:
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


def can_share_room(deployment: Deployment, viewer: str, target: str) -> bool:
    """Whether users of the two servers can be in one room at all."""
    return federation_allowed(deployment, viewer, target) and any(
        deployment.homeservers[name].policy.rooms.federation == "creator_choice"
        for name in (viewer, target)
    )


class SpaceHierarchySurface:
    name = "space_hierarchy"
    phase: Phase = "join"
    question = "Can the viewer's users join a public space of the target and browse its rooms?"

    def expected(self, deployment: Deployment, viewer: str, target: str, ids: ProbeIds) -> str:
        visible = (
            federation_allowed(deployment, viewer, target)
            and deployment.homeservers[target].policy.rooms.federation != "never"
        )
        return VISIBLE if visible else HIDDEN

    async def observe(self, probe: PairProbe) -> Observation:
        target = probe.target
        client = probe.viewer.browser.client
        try:
            await probe.join(client, target.space)
        except SynapseApiError as error:
            return Observation(HIDDEN, await _join_refusal(probe, error))
        try:
            body = await client.request(
                "GET", f"/_matrix/client/v1/rooms/{quote(target.space)}/hierarchy"
            )
        except SynapseApiError as error:
            return Observation(HIDDEN, _refusal(error))
        rooms = {room.get("room_id"): room for room in body.get("rooms", [])}
        child = rooms.get(target.public_room)
        if child is not None and child.get("name") == target.public_room_name:
            return Observation(VISIBLE, "the space's child room is listed with its name")
        return Observation(HIDDEN, "joined, but the child room is not listed")


class JoinNonFederatedSurface:
    name = "join_nonfederated"
    phase: Phase = "join"
    question = "Can the viewer's users join a public room of the target that is non-federated?"

    def expected(self, deployment: Deployment, viewer: str, target: str, ids: ProbeIds) -> str:
        return "refused"

    async def observe(self, probe: PairProbe) -> Observation:
        try:
            await probe.join(probe.viewer.browser.client, probe.target.closed_room)
        except SynapseApiError as error:
            return Observation("refused", await _join_refusal(probe, error))
        return Observation("joined", "a remote user joined a non-federated room")


SURFACES: tuple[Surface, ...] = (
    FederationSurface(),
    PublicRoomsSurface(),
    SpaceHierarchySurface(),
    ProfileSurface(),
    DeviceNamesSurface(),
    UserSearchSurface(),
    JoinNonFederatedSurface(),
)
