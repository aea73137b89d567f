"""Checks of addresses and ports: where homeservers listen and how others find them.

Loopback siblings, an admin API within reach of the Internet, a server name
that no well-known delegates, federation that goes around the proxy: each
works on one machine and fails, or exposes too much, in production. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address, ip_network

from homeport.config.deployment import Deployment
from homeport.config.types import split_server_name
from homeport.policy.lint.findings import Finding
from homeport.policy.siblings import sibling_address


def check_loopback_siblings(deployment: Deployment, name: str) -> Iterator[Finding]:
    """Siblings on loopback: every other Synapse of the machine may then reach its loopback."""
    address = sibling_address(deployment, name)
    if len(deployment.homeservers) < 2 or address is None or not ip_address(address).is_loopback:
        return
    others = [other for other in deployment.homeservers if other != name]
    where = "the proxy listens" if deployment.proxy is not None else f"{name} listens"
    yield Finding(
        "loopback-siblings",
        "warning",
        name,
        ("proxy", "address") if deployment.proxy is not None else ("address",),
        f"{', '.join(others)} must be allowed to send requests to {address}, where {where}",
        "Synapse refuses loopback addresses for its outbound requests; to federate with "
        f"{name} on this machine, the others allow exactly {address} "
        "(ip_range_whitelist). That also lets their users point push gateways or "
        "identity-server lookups at any other service listening on that address "
        "(pushers only to /_matrix/push/v1/notify). Fine for one machine in development; "
        "in production reach siblings through their public addresses.",
        "listen on a public or private address of the machine behind a reverse proxy "
        "(the production layout), or keep other services off this loopback address",
        section=() if deployment.proxy is not None else None,
    )


def check_admin_api_exposed(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    if ip_address(hs.address).is_loopback:
        return
    yield Finding(
        "admin-api-exposed",
        "warning",
        name,
        ("address",),
        f"{name} serves Synapse's admin API on {hs.address}, beside federation",
        "The TLS listener carries federation, the client API, /_synapse/admin and the "
        "Homeport module's /_homeport/v1 alike. Every admin call needs an admin's token, "
        "but on a public address the admin API is one stolen token away from the Internet.",
        "keep address: 127.0.0.1 behind a reverse proxy that does not forward "
        "/_synapse/admin and /_homeport/ (the production layout), or firewall them",
    )


# An allowed range this large, outside private networks, is "the Internet" for the rule.
OPEN_NETWORK_ADDRESSES = 2**16


def check_admin_open_through_proxy(deployment: Deployment, name: str) -> Iterator[Finding]:
    """The proxy's `admin_from` lets a large part of the Internet reach the admin API."""
    proxy = deployment.proxy
    if proxy is None or name != next(iter(deployment.homeservers)):
        return  # one finding for the deployment, under the first homeserver
    for index, text in enumerate(proxy.admin_from):
        network = ip_network(text)
        if network.is_private or network.num_addresses <= OPEN_NETWORK_ADDRESSES:
            continue
        yield Finding(
            "admin-open-through-proxy",
            "warning",
            name,
            ("admin_from", index),
            f"the proxy lets {text} reach /_synapse/admin, /_homeport/ and the admin website",
            "Every admin call still needs an admin's token, but from that range the admin "
            "API is one stolen token (or one Synapse bug) away from anyone there.",
            "list only the networks administrators work from (a VPN, the office), e.g. "
            "10.0.0.0/8 or 203.0.113.7/32",
            section=("proxy",),
        )


def check_server_name_undelegated(deployment: Deployment, name: str) -> Iterator[Finding]:
    """Other servers will look for this server where nothing of the deployment answers."""
    hs = deployment.homeservers[name]
    address = split_server_name(hs.server_name)
    if address.port is not None or address.is_ip_literal or deployment.proxy is not None:
        return
    if hs.port == 8448:
        return  # the default port: found without delegation
    yield Finding(
        "server-name-undelegated",
        "warning",
        name,
        ("server_name",),
        f"other servers will look for {hs.server_name} at "
        f"https://{address.host}/.well-known/matrix/server, then DNS SRV, then port 8448; "
        f"{name} listens on {hs.port} and nothing here serves that well-known",
        "A server name without a port needs delegation (a well-known on port 443 of its "
        "host, or an SRV record) unless the homeserver is on port 8448; without it "
        "federation fails both ways.",
        f"add `proxy:` (the nginx target serves the well-known on 443), serve "
        f'{{"m.server": "{address.host}:{hs.port}"}} there yourself, or write the port '
        f"in the server name ({address.host}:{hs.port})",
    )


def check_federation_bypasses_proxy(deployment: Deployment, name: str) -> Iterator[Finding]:
    """A server name with a port other than the proxy's sends federation around it."""
    hs = deployment.homeservers[name]
    proxy = deployment.proxy
    port = split_server_name(hs.server_name).port
    if proxy is None or port is None or port == proxy.port:
        return
    yield Finding(
        "federation-bypasses-proxy",
        "warning",
        name,
        ("server_name",),
        f"{hs.server_name} names port {port}, so other servers connect there, not to the "
        f"proxy on {proxy.port}",
        "A port in the server name skips delegation: federation goes straight to that "
        "port, where the proxy does not listen (and where the admin API must not be).",
        f"drop the port from the server name (the proxy delegates to "
        f"{hs.served_host}:{proxy.port}), or make it :{proxy.port}",
    )
