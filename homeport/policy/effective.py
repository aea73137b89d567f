"""The policy as Synapse will apply it: names resolved, the server itself added. Pure."""

from __future__ import annotations

from typing import Any

from homeport.config.deployment import Deployment


def effective_whitelist(deployment: Deployment, name: str) -> list[str] | None:
    """Server names this homeserver federates with, or None for everyone.

    Homeserver names of the file become their server names, and the server's
    own name is always added (Synapse refuses even local federation-style
    requests otherwise, such as fetching our own keys).
    """
    hs = deployment.homeservers[name]
    entries = hs.policy.federation_domain_whitelist
    if entries is None:
        return None
    resolved = [hs.server_name]
    for entry in entries:
        server = (
            deployment.homeservers[entry].server_name if entry in deployment.homeservers else entry
        )
        if server not in resolved:
            resolved.append(server)
    return resolved


def federation_allowed(deployment: Deployment, viewer: str, target: str) -> bool:
    """Whether two homeservers of the file federate: each must allow the other."""
    for a, b in ((viewer, target), (target, viewer)):
        allowed = effective_whitelist(deployment, a)
        if allowed is not None and deployment.homeservers[b].server_name not in allowed:
            return False
    return True


def synapse_policy_settings(deployment: Deployment, name: str) -> dict[str, Any]:
    """The Synapse settings that carry the policy of homeserver `name`."""
    policy = deployment.homeservers[name].policy
    settings: dict[str, Any] = {
        "allow_public_rooms_over_federation": policy.allow_public_rooms_over_federation,
        "enable_room_list_search": policy.enable_room_list_search,
        "allow_profile_lookup_over_federation": policy.allow_profile_lookup_over_federation,
        "allow_device_name_lookup_over_federation": (
            policy.allow_device_name_lookup_over_federation
        ),
        "user_directory": policy.user_directory.model_dump(),
        "limit_profile_requests_to_users_who_share_rooms": (
            policy.limit_profile_requests_to_users_who_share_rooms
        ),
        "require_auth_for_profile_requests": policy.require_auth_for_profile_requests,
    }
    if policy.room_list_publication_rules is not None:
        settings["room_list_publication_rules"] = [
            rule.model_dump() for rule in policy.room_list_publication_rules
        ]
    whitelist = effective_whitelist(deployment, name)
    if whitelist is not None:
        settings["federation_domain_whitelist"] = whitelist
    return settings
