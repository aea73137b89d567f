"""Serving Homeport's own HTTP services with uvicorn: the socket `up` binds, the servers.

`up` binds each service's port before any homeserver starts (a taken port stops
`up` cleanly, before anything runs) and hands the listening socket to the host
process (`host.py`); run alone, a service listens on its port itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any, Literal

from homeport.errors import HomeportError

if TYPE_CHECKING:  # uvicorn and httpx load where a service runs, not in every command
    import uvicorn
    from starlette.types import ASGIApp


def bind_listener(address: str, port: int, who: str, key: str) -> socket.socket:
    """A listening, non-blocking socket, or a HomeportError that says what to change."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as error:
        sock.close()
        raise HomeportError(
            f"{who} cannot listen on {address}:{port}: {error.strerror}; "
            f"free that port or change `{key}`"
        ) from error
    sock.listen(128)
    sock.setblocking(False)
    return sock


def https_config(
    app: ASGIApp,
    address: str,
    port: int,
    tls: tuple[str, str],
    limit_concurrency: int | None = None,
    forwarded_from: list[str] | None = None,
) -> uvicorn.Config:
    """A quiet uvicorn over TLS (`tls`: certificate, key).

    The client address comes from X-Forwarded-For only behind the deployment's
    proxy, and only on a connection from where the proxy connects from
    (`forwarded_from`: loopback on one machine); otherwise anyone could name
    their own address and dodge the per-address limits.
    """
    return quiet_config(
        app,
        address,
        port,
        limit_concurrency,
        lifespan="on",
        ssl_certfile=tls[0],
        ssl_keyfile=tls[1],
        proxy_headers=forwarded_from is not None,
        forwarded_allow_ips=forwarded_from or [],
    )


# No access log, no server header, Homeport's own logging, five seconds to finish what is
# in flight.
QUIET: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "server_header": False,
    "timeout_graceful_shutdown": 5,
}


def quiet_config(
    app: ASGIApp,
    address: str,
    port: int,
    limit_concurrency: int | None,
    lifespan: Literal["on", "off"],
    **tls_and_proxy: Any,
) -> uvicorn.Config:
    """uvicorn as every Homeport service runs it (`QUIET`)."""
    import uvicorn

    options = {**QUIET, "lifespan": lifespan, "limit_concurrency": limit_concurrency}
    return uvicorn.Config(app, address, port, **options, **tls_and_proxy)


def run_alone(main: Callable[[socket.socket | None, asyncio.Event], Awaitable[None]]) -> None:
    """Run one service by itself (by hand, or in a pod) until SIGINT or SIGTERM."""

    async def until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(None, stop)

    asyncio.run(until_signalled())


async def serve_until(
    config: uvicorn.Config, listening: socket.socket | None, stop: asyncio.Event
) -> None:
    """Serve until `stop` is set: on the socket `up` bound, or alone on the port.

    On that socket with its real address family: uvicorn's own `fd=` would take
    it for a Unix socket, and asyncio then leaves Nagle's algorithm on, which
    costs every response a 40 ms delayed ACK.
    """
    import uvicorn

    class HostedServer(uvicorn.Server):
        """A uvicorn server that leaves signals to its host and stops when told."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    server = HostedServer(config)

    async def stopping() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(stopping())
    try:
        await server.serve(sockets=None if listening is None else [listening])
    finally:
        watcher.cancel()


async def https_health(
    address: str, port: int, host: str, ssl_context: ssl.SSLContext
) -> str | None:
    """ "" once the service answers /health over verified TLS, else None.

    Asked on the address it binds (loopback when it binds all), with its host
    name for TLS, so the check needs no DNS.
    """
    if ip_address(address).is_unspecified:
        address = "::1" if ":" in address else "127.0.0.1"
    literal = f"[{address}]" if ":" in address else address
    import httpx

    try:
        async with httpx.AsyncClient(verify=ssl_context, timeout=3.0) as http:
            response = await http.get(
                f"https://{literal}:{port}/health",
                headers={"Host": f"{host}:{port}"},
                extensions={"sni_hostname": host},
            )
    except (httpx.HTTPError, OSError):
        return None
    return "" if response.status_code == 200 else None
