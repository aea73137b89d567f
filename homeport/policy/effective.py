"""The policy as Synapse will apply it: names resolved, the server itself added. Pure.

A `Side` is one server as the expectations see it. The homeservers of the
file are sides; so is a server outside the deployment, which is assumed to
run with Synapse's defaults (`OUTSIDER`).
"""

from __future__ import annotations

from dataclasses import dataclass

from homeport.config.deployment import Deployment
from homeport.config.policy import Policy


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


def _reaches_beyond(deployment: Deployment, other: str, allowed: list[str]) -> bool:
    """Whether homeserver `other` federates with a server outside `allowed`."""
    theirs = effective_whitelist(deployment, other)
    return theirs is None or any(server not in allowed for server in theirs)


def key_servers(deployment: Deployment, name: str) -> list[str]:
    """The homeservers of the file that homeserver `name` asks for other servers' keys
    (Synapse's `trusted_key_servers`): none for a homeserver open to all (it asks each
    server itself); for one with a whitelist, its siblings that federate beyond it.

    Its users may join a sibling's room that holds users of servers it does not
    federate with; it cannot fetch those servers' keys itself, so without a key
    server that can, Synapse's partial join never completes and the room hangs
    (docs/visibility.md, "Rooms that mix servers"). The sibling answers for their keys.
    """
    allowed = effective_whitelist(deployment, name)
    if allowed is None:
        return []
    return [
        hs.server_name
        for other, hs in deployment.homeservers.items()
        if other != name
        and hs.server_name in allowed
        and _allows(deployment, other, deployment.homeservers[name].server_name)
        and _reaches_beyond(deployment, other, allowed)
    ]


def _allows(deployment: Deployment, other: str, server: str) -> bool:
    theirs = effective_whitelist(deployment, other)
    return theirs is None or server in theirs


@dataclass(frozen=True)
class Side:
    """One server of a pair: what it is called, its policy, whom it federates with."""

    label: str  # a homeserver name of the file, or a description of an outside server
    server_name: str
    policy: Policy
    whitelist: tuple[str, ...] | None  # None: everyone

    def allows(self, other: Side) -> bool:
        return self.whitelist is None or other.server_name in self.whitelist


# A server outside the deployment, running Synapse's defaults (which are
# Homeport's defaults too); its server name matches no whitelist entry.
OUTSIDER = Side("a server outside this deployment", "", Policy(), None)


def side(deployment: Deployment, name: str) -> Side:
    hs = deployment.homeservers[name]
    whitelist = effective_whitelist(deployment, name)
    return Side(name, hs.server_name, hs.policy, None if whitelist is None else tuple(whitelist))


def sides_federate(a: Side, b: Side) -> bool:
    """Federation needs both: each whitelist must allow the other server."""
    return a.allows(b) and b.allows(a)


def federation_allowed(deployment: Deployment, viewer: str, target: str) -> bool:
    """Whether two homeservers of the file federate."""
    return sides_federate(side(deployment, viewer), side(deployment, target))
