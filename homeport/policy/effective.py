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
