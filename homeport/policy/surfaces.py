"""What each surface of visibility means: one pure truth for verify and the Policy page.

A surface answers one question about an ordered pair of servers: what can
the viewer's users see of the target? `expected` derives the answer from the
policies alone; `sentence` says an answer in words. `homeport verify`
compares `expected` with what its probes observe (`homeport.verify`), and
the admin website's Policy page shows `sentence(expected(...))`, so the two
cannot disagree. Adding a surface is one class here, one line in SURFACES
and one observer in `homeport.verify.observe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

from matrix_common.regex import glob_to_regex

from homeport.config.deployment import Deployment
from homeport.config.policy import Policy
from homeport.policy.effective import Side, side, sides_federate

Phase = Literal["look", "share", "join"]
VISIBLE, HIDDEN = "visible", "hidden"


@dataclass(frozen=True)
class ProbeIds:
    """The target's probe user and room, where an expectation depends on exactly them."""

    host_user_id: str
    public_room_id: str


class Surface(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def phase(self) -> Phase:
        """When verify probes it: see homeport.verify.run."""
        ...

    @property
    def question(self) -> str: ...

    @property
    def sentences(self) -> Mapping[str, str]:
        """Each possible answer in words, with {viewer} and {target}."""
        ...

    def expected(self, viewer: Side, target: Side, ids: ProbeIds | None) -> str:
        """The answer the policies give; `ids` None means "any user and room of the target"."""
        ...


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


def publication_possible(policy: Policy) -> bool:
    """Whether some user may publish some room: an `allow` before any deny-everything rule."""
    for rule in policy.room_list_publication_rules or []:
        if rule.action == "allow":
            return True
        if rule.user_id == rule.alias == rule.room_id == "*":
            return False
    return False


def can_share_room(viewer: Side, target: Side) -> bool:
    """Whether users of the two servers can be in one room at all."""
    return sides_federate(viewer, target) and any(
        s.policy.rooms.federation == "creator_choice" for s in (viewer, target)
    )


class FederationSurface:
    name = "federation"
    phase: Phase = "look"
    question = "Can the viewer's server reach the target's at all?"
    sentences: ClassVar[Mapping[str, str]] = {
        "allowed": "{viewer} and {target} federate: their servers talk to each other.",
        "denied": "{viewer} and {target} do not federate: each refuses the other.",
    }

    def expected(self, viewer: Side, target: Side, ids: ProbeIds | None) -> str:
        return "allowed" if sides_federate(viewer, target) else "denied"


class PublicRoomsSurface:
    name = "public_rooms"
    phase: Phase = "look"
    question = "Do the viewer's users see rooms published in the target's room directory?"
    sentences: ClassVar[Mapping[str, str]] = {
        VISIBLE: "Users of {viewer} see the rooms published in {target}'s room directory.",
        HIDDEN: "Users of {viewer} cannot see {target}'s room directory.",
    }

    def expected(self, viewer: Side, target: Side, ids: ProbeIds | None) -> str:
        policy = target.policy
        publishable = (
            publication_possible(policy)
            if ids is None
            else publication_allowed(policy, ids.host_user_id, ids.public_room_id)
        )
        visible = (
            sides_federate(viewer, target)
            and policy.allow_public_rooms_over_federation
            and policy.enable_room_list_search
            and viewer.policy.enable_room_list_search
            # Synapse serves only federated rooms over federation.
            and policy.rooms.federation != "never"
            and publishable
        )
        return VISIBLE if visible else HIDDEN


class SpaceHierarchySurface:
    name = "space_hierarchy"
    phase: Phase = "join"
    question = "Can the viewer's users join a public space of the target and browse its rooms?"
    sentences: ClassVar[Mapping[str, str]] = {
        VISIBLE: "Users of {viewer} can join {target}'s public spaces and browse their rooms.",
        HIDDEN: "Users of {viewer} cannot join {target}'s spaces or browse their rooms.",
    }

    def expected(self, viewer: Side, target: Side, ids: ProbeIds | None) -> str:
        visible = sides_federate(viewer, target) and target.policy.rooms.federation != "never"
        return VISIBLE if visible else HIDDEN


class ProfileSurface:
    name = "profile"
    phase: Phase = "look"
    question = "Do the viewer's users see a target user's display name and avatar?"
    sentences: ClassVar[Mapping[str, str]] = {
        VISIBLE: "Users of {viewer} can look up the display names and avatars of {target}'s users.",
        HIDDEN: "Users of {viewer} cannot look up the profiles of {target}'s users they share "
        "no room with.",
    }

    def expected(self, viewer: Side, target: Side, ids: ProbeIds | None) -> str:
        limited = (
            viewer.policy.limit_profile_requests_to_users_who_share_rooms
            and viewer.policy.require_auth_for_profile_requests
        )
        visible = (
            sides_federate(viewer, target)
            and target.policy.allow_profile_lookup_over_federation
            and not limited  # the probe shares no room with the target user
        )
        return VISIBLE if visible else HIDDEN


class DeviceNamesSurface:
    name = "device_names"
    phase: Phase = "look"
    question = "Do the viewer's users see the display names of the target users' devices?"
    sentences: ClassVar[Mapping[str, str]] = {
        VISIBLE: "Users of {viewer} see the names of the devices of {target}'s users.",
        HIDDEN: "Users of {viewer} do not see the names of the devices of {target}'s users.",
    }

    def expected(self, viewer: Side, target: Side, ids: ProbeIds | None) -> str:
        shown = target.policy.allow_device_name_lookup_over_federation
        return VISIBLE if sides_federate(viewer, target) and shown else HIDDEN


class UserSearchSurface:
    name = "user_search"
    phase: Phase = "share"
    question = (
        "Do the viewer's users find a target user whom their server knows only from "
        "a private room with a colleague?"
    )
    sentences: ClassVar[Mapping[str, str]] = {
        VISIBLE: "Users of {viewer} find, in user search, any user of {target} whom their "
        "server knows, even one they share no room with.",
        HIDDEN: "Users of {viewer} do not find, in user search, users of {target} they share "
        "no room with.",
    }

    def expected(self, viewer: Side, target: Side, ids: ProbeIds | None) -> str:
        directory = viewer.policy.user_directory
        visible = (
            can_share_room(viewer, target)
            and directory.enabled
            and not directory.exclude_remote_users
            and directory.search_all_users
        )
        return VISIBLE if visible else HIDDEN


class JoinNonFederatedSurface:
    name = "join_nonfederated"
    phase: Phase = "join"
    question = "Can the viewer's users join a public room of the target that is non-federated?"
    sentences: ClassVar[Mapping[str, str]] = {
        "refused": "Users of {viewer} can never join {target}'s non-federated rooms.",
        "joined": "Users of {viewer} can join {target}'s non-federated rooms.",
    }

    def expected(self, viewer: Side, target: Side, ids: ProbeIds | None) -> str:
        return "refused"


SURFACES: tuple[Surface, ...] = (
    FederationSurface(),
    PublicRoomsSurface(),
    SpaceHierarchySurface(),
    ProfileSurface(),
    DeviceNamesSurface(),
    UserSearchSurface(),
    JoinNonFederatedSurface(),
)


def expectations(
    deployment: Deployment, viewer: str, target: str, ids: ProbeIds | None
) -> dict[str, str]:
    """What the policy says the viewer's users see of the target, surface by surface."""
    seen_by, seen = side(deployment, viewer), side(deployment, target)
    return {s.name: s.expected(seen_by, seen, ids) for s in SURFACES}


def ordered_pairs(deployment: Deployment) -> list[tuple[str, str]]:
    names = list(deployment.homeservers)
    return [(viewer, target) for viewer in names for target in names if viewer != target]
