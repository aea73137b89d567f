"""Where a homeserver's siblings reach it, and which of those addresses Synapse must be
told to allow. Pure: read by the render (`ip_range_whitelist`) and by lint (its traps).
"""

from __future__ import annotations

from ipaddress import ip_address

from homeport.config.deployment import Deployment
from homeport.config.types import split_server_name


def _is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _blocked_by_default(address: str) -> bool:
    """Whether Synapse's default `ip_range_blacklist` covers it (non-global addresses)."""
    return not ip_address(address).is_global


def sibling_address(deployment: Deployment, name: str) -> str | None:
    """The one address its siblings reach homeserver `name` at, when Synapse would block it.

    Behind the proxy that is the proxy's address, whatever the homeserver binds.
    """
    hs = deployment.homeservers[name]
    proxy = deployment.proxy
    if proxy is not None:
        if proxy.address is None or ip_address(proxy.address).is_unspecified:
            return None  # its public names: reached like any other server
        return proxy.address if _blocked_by_default(proxy.address) else None
    host, listen = split_server_name(hs.server_name).host, hs.address
    bound = ip_address(listen)
    if not bound.is_unspecified:
        return listen if _blocked_by_default(listen) else None
    if host.startswith("[") or _is_ip(host):
        literal = host.strip("[]")
        return literal if _blocked_by_default(literal) else None
    if _is_loopback_host(host):  # `localhost` on all interfaces: the loopback of its family
        return "127.0.0.1" if bound.version == 4 else "::1"
    return None  # a public name: reached like any other server, nothing to allow


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def sibling_ip_allowlist(deployment: Deployment, name: str) -> list[str]:
    """The exact addresses sibling homeservers listen on, where Synapse would refuse them.

    Synapse refuses loopback and private addresses for its outbound requests
    (a guard against request forgery), and `ip_range_whitelist` lifts that
    for every outbound request (federation, but also push gateways, identity
    servers, third-party invite key checks). So only the single addresses
    siblings listen on are allowed, never a range, and nothing for siblings
    reached through public addresses. `homeport lint` warns when a loopback
    address is on the list (docs/configuration.md says what it leaves open).
    """
    allowed: list[str] = []
    for other_name in deployment.homeservers:
        if other_name == name:
            continue
        address = sibling_address(deployment, other_name)
        if address is not None and address not in allowed:
            allowed.append(address)
    return allowed
