"""Where a server name's server-server API lives, by the Matrix spec's rules.

In order: an IP literal or an explicit port is used as it is; otherwise
`https://<host>/.well-known/matrix/server` may delegate to another name (whose
own explicit port or IP is used as it is); then the SRV records
`_matrix-fed._tcp` and the older `_matrix._tcp`; finally port 8448. TLS is
checked against the (delegated) server name, whatever address it connects to.

Only names the service already allows are resolved: what it fetches is never
chosen by the caller. Where an allowed partner's name leads is the partner's
choice, though: `homeport.conference.fetch` checks every address before it
connects, and `outbound` says which well-known redirects it follows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeport.config.types import split_server_name

DEFAULT_PORT = 8448

# A well-known fetch: the `m.server` value, or None when there is no usable document.
WellKnown = Callable[[str], Awaitable[str | None]]
# An SRV lookup: (target host, port) of the best record, or None.
Srv = Callable[[str], Awaitable[tuple[str, int] | None]]


@dataclass(frozen=True)
class Target:
    """Connect to `address:port`; send `Host: host_header`; verify TLS for `tls_name`."""

    address: str
    port: int
    host_header: str
    tls_name: str

    @property
    def base_url(self) -> str:
        return f"https://{self.address}:{self.port}"


def _direct(name: str) -> Target | None:
    parts = split_server_name(name)
    if parts.is_ip_literal:
        return Target(parts.host, parts.port or DEFAULT_PORT, name, parts.host.strip("[]"))
    if parts.port is not None:
        return Target(parts.host, parts.port, name, parts.host)
    return None


async def _by_srv(name: str, srv: Srv) -> Target:
    for prefix in ("_matrix-fed._tcp.", "_matrix._tcp."):
        record = await srv(prefix + name)
        if record is not None:
            return Target(record[0], record[1], name, name)
    return Target(name, DEFAULT_PORT, name, name)


async def resolve(server_name: str, well_known: WellKnown, srv: Srv) -> Target:
    direct = _direct(server_name)
    if direct is not None:
        return direct
    delegated = await well_known(server_name)
    if delegated:
        try:
            target = _direct(delegated)
        except ValueError:
            target = None  # a malformed delegation counts as none
            delegated = None
        if target is not None:
            return target
    return await _by_srv(delegated or server_name, srv)
