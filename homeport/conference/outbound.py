"""Where the conference service may connect and what it may follow, decided without I/O.

A caller chooses which allowed server's name is checked; that server's
well-known, DNS and redirects then choose where the service connects. Those
answers are a partner's, not ours: an address on this machine or its network
(loopback, private, link-local, unspecified) is refused unless the operator
listed it, a redirect is followed only to HTTPS on the same host and port,
and a well-known is believed for a bounded time. `homeport.conference.fetch`
does the I/O and asks these functions.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from urllib.parse import urljoin, urlsplit

from homeport.config.conference import AddressRule
from homeport.config.types import check_server_name

IpAddress = IPv4Address | IPv6Address

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
MAX_WELL_KNOWN_BYTES = 64 * 1024
MAX_USERINFO_BYTES = 64 * 1024
# The spec: honour Cache-Control, with a default, and cap it (48 h). A floor
# keeps a partner that says `no-store` from making every check fetch again.
WELL_KNOWN_DEFAULT_SECONDS = 3600.0
WELL_KNOWN_MIN_SECONDS = 60.0
WELL_KNOWN_MAX_SECONDS = 48 * 3600.0
WELL_KNOWN_FAILURE_SECONDS = 300.0

_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT: not public, not is_private


def _embedded(ip: IpAddress) -> IpAddress:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4), else itself."""
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if int(ip) >> 32 == 0x0064_FF9B << 64:  # 64:ff9b::/96, the NAT64 prefix
            return IPv4Address(int(ip) & 0xFFFF_FFFF)
    return ip


def _kind(ip: IpAddress) -> str | None:
    """What makes an address local rather than public, or None for a public one."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, IPv4Address) and ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "not public"
    return None


def _listed(ip: IpAddress, port: int, rules: tuple[AddressRule, ...]) -> bool:
    return any(
        candidate in rule.network and rule.port in (None, port)
        for rule in rules
        for candidate in {ip, _embedded(ip)}
    )


def refusal(address: str, port: int, rules: tuple[AddressRule, ...] = ()) -> str | None:
    """Why the service must not connect to `address`:`port` for a partner; None: it may."""
    try:
        ip = ip_address(address.strip("[]").partition("%")[0])
    except ValueError:
        return f"{address} is not an IP address"
    kind = _kind(_embedded(ip))
    if kind is None or _listed(ip, port, rules):
        return None
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{shown}:{port} is {kind}, not in conference.allow_private_addresses"


def redirect(url: str, status: int, location: str | None) -> str | None:
    """The URL a redirect leads to, when it is HTTPS on the same host and port; else None."""
    if status not in REDIRECT_STATUSES or not location:
        return None
    here, there = urlsplit(url), urlsplit(urljoin(url, location.strip()))
    try:
        same_port = (here.port or 443) == (there.port or 443)
    except ValueError:
        return None
    if (
        there.scheme != "https"
        or there.username is not None
        or there.password is not None
        or (there.hostname or "") != (here.hostname or "")
        or not same_port
    ):
        return None
    return there.geturl()


def delegation(body: bytes) -> str | None:
    """The `m.server` of a well-known body when it is a server name; None otherwise."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("m.server") if isinstance(document, dict) else None
    if not isinstance(value, str) or not value:
        return None
    try:
        return check_server_name(value.lower())
    except ValueError:
        return None


def well_known_seconds(cache_control: str | None, found: bool) -> float:
    """How long a well-known answer is believed: Cache-Control's max-age, within bounds."""
    if not found:
        return WELL_KNOWN_FAILURE_SECONDS
    parts = (part.partition("=") for part in (cache_control or "").split(","))
    directives = {name.strip().lower(): value.strip().strip('"') for name, _, value in parts}
    seconds = WELL_KNOWN_DEFAULT_SECONDS
    if "no-store" in directives or "no-cache" in directives:
        seconds = 0.0
    elif directives.get("max-age", "").isdigit():
        seconds = float(directives["max-age"])
    return min(WELL_KNOWN_MAX_SECONDS, max(WELL_KNOWN_MIN_SECONDS, seconds))
