"""The conference service's requests to other servers: resolve, check, connect, read a little.

For a partner (a server of `allow_homeservers`) the host is resolved here and
every address checked (`outbound.refusal`) before a connection is made to
that very address, so a name that resolves to this machine or its network is
refused however it was reached (well-known, SRV, DNS). TLS is still verified
against the host name (SNI), and connections are never reused: two partners
behind one address never share a TLS session made for the other. No proxy
from the environment is used: it would connect where no check was made. The
deployment's own homeservers are reached by name, unchecked: their names and
delegations are the operator's.

A body is read only up to its limit and never decompressed; no redirect is
followed here (`WellKnowns` follows the ones `outbound.redirect` allows); the
whole exchange, DNS included, has one deadline.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import httpx

from homeport.conference.limits import WellKnownCache
from homeport.conference.outbound import (
    MAX_REDIRECTS,
    MAX_WELL_KNOWN_BYTES,
    REDIRECT_STATUSES,
    WELL_KNOWN_FAILURE_SECONDS,
    delegation,
    redirect,
    refusal,
    well_known_seconds,
)
from homeport.conference.resolve import Target
from homeport.config.conference import AddressRule

logger = logging.getLogger("homeport.conference")

OUTBOUND_TIMEOUT = 10.0
CONNECT_HEADROOM = 0.5  # httpx's connect timeouts end this long before the deadline
WELL_KNOWN_PORT = 443
WELL_KNOWN_PATH = "/.well-known/matrix/server"
MAX_ADDRESSES = 3  # tried in turn when a host has several (IPv6 and IPv4, say)


class OutboundError(Exception):
    """A request to another server that was not made, or not answered usably."""


class Blocked(OutboundError):
    """Every address of the host is one the service must not connect to."""


class Unreachable(OutboundError):
    """No connection, no answer in time, or not HTTP."""


class TooLarge(OutboundError):
    """The answer is longer than the request's limit."""


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: httpx.Headers
    body: bytes  # empty for a redirect


async def _read(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{declared} bytes announced, at most {limit} read")
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"more than {limit} bytes")
    return bytes(body)


class Fetcher:
    """GET requests to other servers, each to an address checked first when `checked`."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        rules: tuple[AddressRule, ...] = (),
        timeout: float = OUTBOUND_TIMEOUT,
    ) -> None:
        self._rules = rules
        self._timeout = timeout
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        self._partners = httpx.AsyncClient(
            verify=ssl_context, timeout=timeout, trust_env=False, limits=no_reuse
        )
        self._own = httpx.AsyncClient(verify=ssl_context, timeout=timeout)

    async def aclose(self) -> None:
        await self._partners.aclose()
        await self._own.aclose()

    async def get(
        self,
        target: Target,
        path: str,
        *,
        limit: int,
        checked: bool,
        params: Mapping[str, str] | None = None,
    ) -> Fetched:
        """`path` (with its query) from `target`; else Blocked, Unreachable or TooLarge."""
        host = target.address.strip("[]")
        try:
            async with asyncio.timeout(self._timeout) as deadline:
                if not checked:
                    return await self._get(self._own, host, target, path, params, limit, deadline)
                addresses = await self._addresses(host, target.port)
                for address in addresses[:-1]:
                    try:
                        return await self._get(
                            self._partners, address, target, path, params, limit, deadline
                        )
                    except httpx.ConnectError:
                        continue
                return await self._get(
                    self._partners, addresses[-1], target, path, params, limit, deadline
                )
        except (TimeoutError, httpx.TimeoutException):
            raise Unreachable(f"no answer within {self._timeout:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError, UnicodeError) as error:
            raise Unreachable(type(error).__name__) from None  # a strange SRV name too

    async def _addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses the service may connect to; Blocked when there are none."""
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        allowed = [a for a in addresses if refusal(a, port, self._rules) is None]
        if not allowed:
            reasons = (refusal(a, port, self._rules) for a in addresses)
            raise Blocked("; ".join(r for r in reasons if r) or f"{host} has no address")
        return allowed[:MAX_ADDRESSES]

    async def _get(
        self,
        client: httpx.AsyncClient,
        host: str,
        target: Target,
        path: str,
        params: Mapping[str, str] | None,
        limit: int,
        deadline: asyncio.Timeout,
    ) -> Fetched:
        url = httpx.URL(scheme="https", host=host, port=target.port, raw_path=path.encode())
        url = url.copy_merge_params(params) if params else url
        # httpx gives up on connecting before the deadline does: cancelled in a
        # TLS handshake, httpcore leaves the socket open (to the garbage
        # collector), so a server that hangs would hold more than MAX_OUTBOUND.
        # Connecting and the handshake each get `connect`, both within the time left.
        left = (deadline.when() or 0.0) - asyncio.get_running_loop().time()
        connect = max((left - CONNECT_HEADROOM) / 2, 0.01)
        async with client.stream(
            "GET",
            url,
            headers={"Host": target.host_header, "Accept-Encoding": "identity"},
            extensions={"sni_hostname": target.tls_name},
            timeout=httpx.Timeout(max(left, 0.01), connect=connect),
        ) as response:
            status = response.status_code
            body = b"" if status in REDIRECT_STATUSES else await _read(response, limit)
            return Fetched(status, response.headers, body)


class WellKnowns:
    """`/.well-known/matrix/server` of server names, each remembered for a while."""

    def __init__(
        self,
        fetcher: Fetcher,
        port: int = WELL_KNOWN_PORT,  # the spec's; tests serve a partner elsewhere
        cache: WellKnownCache | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetcher, self._port, self._clock = fetcher, port, clock
        self._cache = cache or WellKnownCache()

    async def lookup(self, server_name: str, checked: bool) -> str | None:
        """The name `server_name` delegates to, or None when its well-known names none."""
        now = self._clock()
        known = self._cache.get(server_name, now)
        if known is not None:
            return known.delegated
        delegated, seconds = await self._fetch(server_name, checked)
        self._cache.put(server_name, delegated, now, seconds)
        return delegated

    async def _fetch(self, host: str, checked: bool) -> tuple[str | None, float]:
        port = self._port
        authority = host if port == WELL_KNOWN_PORT else f"{host}:{port}"
        target = Target(host, port, authority, host)
        url = f"https://{authority}{WELL_KNOWN_PATH}"
        for _ in range(MAX_REDIRECTS + 1):
            path = httpx.URL(url).raw_path.decode()
            try:
                fetched = await self._fetcher.get(
                    target, path, limit=MAX_WELL_KNOWN_BYTES, checked=checked
                )
            except OutboundError as error:
                return self._failed(host, f"{type(error).__name__}: {error}")
            if fetched.status not in REDIRECT_STATUSES:
                if fetched.status != 200:
                    return self._failed(host, f"answered {fetched.status}")
                delegated = delegation(fetched.body)
                cache_control = fetched.headers.get("cache-control")
                return delegated, well_known_seconds(cache_control, delegated is not None)
            location = fetched.headers.get("location")
            following = redirect(url, fetched.status, location)
            if following is None:
                return self._failed(host, f"redirect to {location!r} not followed")
            url = following
        return self._failed(host, f"more than {MAX_REDIRECTS} redirects")

    def _failed(self, host: str, reason: str) -> tuple[None, float]:
        logger.info("no well-known", extra={"server": host, "reason": reason})
        return None, WELL_KNOWN_FAILURE_SECONDS


async def srv(name: str) -> tuple[str, int] | None:
    """The preferred SRV target (lowest priority, then highest weight), or None."""
    try:
        answer = await dns.asyncresolver.resolve(name, "SRV", lifetime=5.0)
    except (dns.exception.DNSException, OSError):
        return None
    records = sorted(answer, key=lambda r: (r.priority, -r.weight))
    if not records:
        return None
    best = records[0]
    return str(best.target).rstrip("."), int(best.port)
