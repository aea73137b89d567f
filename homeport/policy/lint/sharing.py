"""Checks of what a homeserver shares: its room directory, profiles, device names, user search.

Each pair of settings here can be valid alone and contradict the other, or
show people to more servers than the file seems to say. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator

from homeport.config.deployment import Deployment
from homeport.policy.effective import effective_whitelist, federation_allowed
from homeport.policy.lint.findings import Finding


def check_never_federated_with_public_rooms(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    if policy.rooms.federation == "never" and policy.allow_public_rooms_over_federation:
        yield Finding(
            "public-rooms-of-never-federated-server",
            "warning",
            name,
            ("policy", "allow_public_rooms_over_federation"),
            f"{name}'s rooms are never federated, yet its room directory is open to other servers",
            "Synapse leaves non-federated rooms out of the directory it serves over "
            "federation, so other servers see only rooms created elsewhere that "
            f"{name}'s users published: probably not what either setting intends.",
            "set allow_public_rooms_over_federation: false, or rooms.federation: creator_choice",
        )


def _peers(deployment: Deployment, name: str) -> list[str]:
    """Homeservers of the file that this one federates with."""
    return [
        other
        for other in deployment.homeservers
        if other != name and federation_allowed(deployment, name, other)
    ]


def check_search_all_users(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    directory = hs.policy.user_directory
    if not directory.search_all_users or not directory.enabled or directory.exclude_remote_users:
        return
    allowed = effective_whitelist(deployment, name)
    if allowed is not None and allowed == [hs.server_name]:
        return
    peers = _peers(deployment, name)
    whom = ", ".join(peers) if peers else "other servers"
    yield Finding(
        "search-all-users-with-federation",
        "warning",
        name,
        ("policy", "user_directory", "search_all_users"),
        f"every user of {name} can find every user of {whom} that {name} has seen",
        "With search_all_users, user search covers everyone this server knows, not only "
        "people in public rooms or sharing a room with the searcher. Users of another "
        "server who share a space with people here become findable by everyone here, "
        "and anyone with an account here can enumerate the whole organisation.",
        "set user_directory.search_all_users: false, or exclude_remote_users: true",
    )


def check_profile_limit_needs_auth(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    if (
        policy.limit_profile_requests_to_users_who_share_rooms
        and not policy.require_auth_for_profile_requests
    ):
        yield Finding(
            "profile-limit-needs-auth",
            "error",
            name,
            ("policy", "limit_profile_requests_to_users_who_share_rooms"),
            "limit_profile_requests_to_users_who_share_rooms needs "
            "require_auth_for_profile_requests",
            "Synapse refuses to start with this combination: it cannot tell who shares a "
            "room with an anonymous requester.",
            "also set require_auth_for_profile_requests: true",
        )


def check_device_names_to_everyone(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    if hs.policy.allow_device_name_lookup_over_federation and (
        hs.policy.federation_domain_whitelist is None
    ):
        yield Finding(
            "device-names-to-everyone",
            "warning",
            name,
            ("policy", "allow_device_name_lookup_over_federation"),
            f"{name} shows its users' device names to every server of the Matrix network",
            'Device names often say more than people think ("Alice\'s work laptop", '
            '"iPhone of the CFO"), and any server can ask for them.',
            "set allow_device_name_lookup_over_federation: false, or a federation_domain_whitelist",
        )


def check_public_rooms_without_directory(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    if policy.allow_public_rooms_over_federation and not policy.enable_room_list_search:
        yield Finding(
            "public-rooms-without-directory",
            "warning",
            name,
            ("policy", "allow_public_rooms_over_federation"),
            "allow_public_rooms_over_federation is true, but enable_room_list_search is false",
            "Without room list search there is no directory at all, for anyone; other "
            "servers get an empty list.",
            "set enable_room_list_search: true, or allow_public_rooms_over_federation: false",
        )


def check_public_rooms_nothing_published(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    rules = policy.room_list_publication_rules or []
    if policy.allow_public_rooms_over_federation and not any(r.action == "allow" for r in rules):
        yield Finding(
            "public-rooms-nothing-published",
            "warning",
            name,
            ("policy", "allow_public_rooms_over_federation"),
            f"{name}'s directory is open to other servers, but nobody may publish to it",
            "Without an `allow` rule in room_list_publication_rules, Synapse publishes "
            "nothing (rooms created as public silently stay unpublished), so other "
            "servers see an empty directory.",
            "add room_list_publication_rules, e.g. [{action: allow}], or set "
            "allow_public_rooms_over_federation: false",
        )


def check_internal_spaces_without_effect(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    if not policy.rooms.internal_spaces:
        return
    if policy.rooms.federation == "never" or policy.federation_domain_whitelist == []:
        why = (
            "rooms.federation: never"
            if policy.rooms.federation == "never"
            else "federation_domain_whitelist: []"
        )
        yield Finding(
            "internal-spaces-without-effect",
            "warning",
            name,
            ("policy", "rooms", "internal_spaces"),
            f"{name}'s internal spaces change nothing: with {why} no room of it federates",
            "Internal spaces keep chosen rooms non-federated on a homeserver whose other "
            "rooms federate; here every room is kept to this server already.",
            "remove internal_spaces, or let the other rooms federate",
        )


def check_internal_users_profiles(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    allowed = effective_whitelist(deployment, name)
    if (
        not policy.rooms.internal_spaces
        or not policy.allow_profile_lookup_over_federation
        or allowed == []
    ):
        return
    yield Finding(
        "internal-users-profiles-to-everyone",
        "warning",
        name,
        ("policy", "allow_profile_lookup_over_federation"),
        f"any server can look up the display name and avatar of every user of {name}, "
        "those who only use its internal spaces included",
        "On one homeserver, the people of the internal spaces are users of a server that "
        "federates: another server that knows or guesses their Matrix IDs can fetch their "
        "profiles. Names still show in rooms shared with other servers (member events "
        "carry them).",
        "set allow_profile_lookup_over_federation: false (the single-homeserver starter does)",
    )
