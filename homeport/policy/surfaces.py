"""What each surface of visibility means: one pure truth for verify and the Policy page.

A surface answers one question about an ordered pair of servers: what can
the viewer's users see of the target? Its rule derives the answer from the
policies alone; its sentences say each answer in words. `homeport verify`
compares `expected` with what its probes observe (`homeport.verify`), and
the admin website's Policy page shows the sentence of the expected answer,
so the two cannot disagree. Adding a surface is one rule and one entry in
SURFACES here, and one observer in `homeport.verify.observe`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from matrix_common.regex import glob_to_regex

from homeport.config.deployment import Deployment
from homeport.config.policy import Policy
from homeport.policy.effective import Side, side, sides_federate

Phase = Literal["look", "share", "join"]
VISIBLE, HIDDEN = "visible", "hidden"
NO_INTERNAL_SPACES = "none"


@dataclass(frozen=True)
class ProbeIds:
    """The target's probe user and room, where an expectation depends on exactly them."""

    host_user_id: str
    public_room_id: str


ExpectationRule = Callable[[Side, Side, ProbeIds | None], str]


@dataclass(frozen=True)
class Surface:
    """One question about what a viewer's users see of a target, and its answers."""

    name: str
    phase: Phase  # when verify probes it: see homeport.verify.run
    question: str
    sentences: Mapping[str, str]  # each possible answer in words, with {viewer} and {target}
    rule: ExpectationRule

    def expected(self, viewer: Side, target: Side, ids: ProbeIds | None) -> str:
        """The answer the policies give; `ids` None means "any user and room of the target"."""
        answer = self.rule(viewer, target, ids)
        assert answer in self.sentences, f"{self.name}: no words for {answer!r}"
        return answer


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


def _federation(viewer: Side, target: Side, ids: ProbeIds | None) -> str:
    return "allowed" if sides_federate(viewer, target) else "denied"


def _public_rooms(viewer: Side, target: Side, ids: ProbeIds | None) -> str:
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


def _space_hierarchy(viewer: Side, target: Side, ids: ProbeIds | None) -> str:
    visible = sides_federate(viewer, target) and target.policy.rooms.federation != "never"
    return VISIBLE if visible else HIDDEN


def _profile(viewer: Side, target: Side, ids: ProbeIds | None) -> str:
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


def _device_names(viewer: Side, target: Side, ids: ProbeIds | None) -> str:
    shown = target.policy.allow_device_name_lookup_over_federation
    return VISIBLE if sides_federate(viewer, target) and shown else HIDDEN


def _user_search(viewer: Side, target: Side, ids: ProbeIds | None) -> str:
    directory = viewer.policy.user_directory
    visible = (
        can_share_room(viewer, target)
        and directory.enabled
        and not directory.exclude_remote_users
        and directory.search_all_users
    )
    return VISIBLE if visible else HIDDEN


def _join_nonfederated(viewer: Side, target: Side, ids: ProbeIds | None) -> str:
    return "refused"  # Synapse's event auth, whatever the policy


def _internal_spaces(viewer: Side, target: Side, ids: ProbeIds | None) -> str:
    # The Homeport module keeps them non-federated and undescribed, whatever the policy.
    return HIDDEN if target.policy.rooms.internal_spaces else NO_INTERNAL_SPACES


SURFACES: tuple[Surface, ...] = (
    Surface(
        "federation",
        "look",
        "Can the viewer's server reach the target's at all?",
        {
            "allowed": "{viewer} and {target} federate: their servers talk to each other.",
            "denied": "{viewer} and {target} do not federate: each refuses the other.",
        },
        _federation,
    ),
    Surface(
        "public_rooms",
        "look",
        "Do the viewer's users see rooms published in the target's room directory?",
        {
            VISIBLE: "Users of {viewer} see the rooms published in {target}'s room directory.",
            HIDDEN: "Users of {viewer} cannot see {target}'s room directory.",
        },
        _public_rooms,
    ),
    Surface(
        "space_hierarchy",
        "join",
        "Can the viewer's users join a public space of the target and browse its rooms?",
        {
            VISIBLE: "Users of {viewer} can join {target}'s public spaces and browse their rooms.",
            HIDDEN: "Users of {viewer} cannot join {target}'s spaces or browse their rooms.",
        },
        _space_hierarchy,
    ),
    Surface(
        "profile",
        "look",
        "Do the viewer's users see a target user's display name and avatar?",
        {
            VISIBLE: "Users of {viewer} can look up the display names and avatars of "
            "{target}'s users.",
            HIDDEN: "Users of {viewer} cannot look up the profiles of {target}'s users they "
            "share no room with.",
        },
        _profile,
    ),
    Surface(
        "device_names",
        "look",
        "Do the viewer's users see the display names of the target users' devices?",
        {
            VISIBLE: "Users of {viewer} see the names of the devices of {target}'s users.",
            HIDDEN: "Users of {viewer} do not see the names of the devices of {target}'s users.",
        },
        _device_names,
    ),
    Surface(
        "user_search",
        "share",
        "Do the viewer's users find a target user whom their server knows only from "
        "a private room with a colleague?",
        {
            VISIBLE: "Users of {viewer} find, in user search, any user of {target} whom their "
            "server knows, even one they share no room with.",
            HIDDEN: "Users of {viewer} do not find, in user search, users of {target} they "
            "share no room with.",
        },
        _user_search,
    ),
    Surface(
        "join_nonfederated",
        "join",
        "Can the viewer's users join a public room of the target that is non-federated?",
        {
            "refused": "Users of {viewer} can never join {target}'s non-federated rooms.",
            "joined": "Users of {viewer} can join {target}'s non-federated rooms.",
        },
        _join_nonfederated,
    ),
    Surface(
        "internal_spaces",
        "look",
        "Can the viewer's users see the target's internal spaces (name, members, rooms) or "
        "join them?",
        {
            HIDDEN: "Users of {viewer} can neither see nor join {target}'s internal spaces.",
            VISIBLE: "Users of {viewer} can see or join {target}'s internal spaces.",
            NO_INTERNAL_SPACES: "{target} has no internal spaces.",
        },
        _internal_spaces,
    ),
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
