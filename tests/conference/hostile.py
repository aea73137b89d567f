"""A hostile partner homeserver on loopback, and a canary that counts who knocks.

`Partner` is a small real HTTPS server (HTTP/1.1, one request a connection)
that answers each path as a test says: redirects, delegations, floods. It
counts the requests it got and how much of a flood it managed to send before
the other side hung up. `Canary` is a TCP listener standing for something
private on this machine (an admin API, an audit bot): it only counts
connections. `Silent` is a homeserver that hangs: it accepts connections and
never answers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from homeport import pki

FLOOD_BYTES = 10 * 1024 * 1024
_CHUNK = b" " * 65536
_TCP_ESTABLISHED = 1  # tcpi_state, Linux's include/net/tcp_states.h


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    flood: int = 0  # this many bytes more, without Content-Length, until the peer hangs up

    @staticmethod
    def json(value: Any, **headers: str) -> Reply:
        return Reply(
            200, {"Content-Type": "application/json", **headers}, json.dumps(value).encode()
        )

    @staticmethod
    def redirect(location: str, status: int = 302) -> Reply:
        return Reply(status, {"Location": location})


def partner_tls(directory: Path, host: str = "localhost") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts: a CA of the partner's own, a certificate for `host`."""
    ca, _ = pki.ensure_ca(directory / "ca.crt", directory / "ca.key", "hostile partner", [host])
    pki.ensure_leaf(ca, host, directory / "leaf.crt", directory / "leaf.key")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(directory / "leaf.crt", directory / "leaf.key")
    client = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    return server, client


class Partner:
    """Answers `routes[path]` (path without query); anything else is 404."""

    def __init__(self, tls: ssl.SSLContext, routes: dict[str, Reply] | None = None) -> None:
        self.tls = tls
        self.routes: dict[str, Reply] = dict(routes or {})
        self.requests: list[str] = []  # request targets, query included
        self.flooded: dict[str, int] = {}  # path -> flood bytes sent before the peer hung up
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def flood_sent(self, path: str) -> int:
        """How much of the flood on `path` went out before the peer hung up (waits for its end)."""
        async with asyncio.timeout(60):
            while path not in self.flooded:
                await asyncio.sleep(0.01)
        return self.flooded[path]

    def asked(self, path: str) -> int:
        return sum(1 for target in self.requests if target.partition("?")[0] == path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            self.requests.append(target)
            path = target.partition("?")[0]
            reply = self.routes.get(path, Reply(404, body=b'{"errcode": "M_NOT_FOUND"}'))
            headers = {**reply.headers, "Connection": "close"}
            if not reply.flood:
                headers["Content-Length"] = str(len(reply.body))
            lines = [f"HTTP/1.1 {reply.status} Whatever"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + reply.body)
            await writer.drain()
            if reply.flood:
                self.flooded[path] = await _flood(writer, reply.flood)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()


async def _flood(writer: asyncio.StreamWriter, total: int) -> int:
    """Send up to `total` bytes, a chunk at a time; how many went before the peer hung up."""
    sent = 0
    try:
        while sent < total and not writer.is_closing():
            writer.write(_CHUNK[: total - sent])
            sent += min(len(_CHUNK), total - sent)
            await writer.drain()
            await asyncio.sleep(0)  # the reader gets its turn, as over a network
    except ConnectionError:
        pass
    return sent


class Canary:
    """A TCP listener on loopback that counts connections and answers nothing."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._knock, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _knock(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


class Silent:
    """A homeserver that hangs: it accepts every TCP connection and never sends a byte.

    What a caller sends (a TLS ClientHello) is read and dropped, so the TLS
    handshake never ends. It counts the connections of process `counted` (all
    when None; others are held as silently, only counted in `others`):
    accepted in all, open now (a connection closes when its peer hangs up),
    and the most open at once.
    """

    def __init__(self, counted: int | None = None) -> None:
        self.counted = counted
        self.others = 0
        self.accepted = 0
        self.most_open = 0
        self.connections: set[asyncio.BaseTransport] = set()  # counted ones, open
        self.held: set[asyncio.BaseTransport] = set()  # every open one
        self._server: asyncio.Server | None = None

    @property
    def open(self) -> int:
        return len(self.connections)

    async def start(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Hanging(self), "127.0.0.1", port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for transport in list(self.held):
                transport.close()
            await self._server.wait_closed()

    async def wait_open(self, count: int, timeout: float = 60) -> None:
        """Until `count` connections are open at once; else an AssertionError saying so."""
        await self._until(lambda: self.open >= count, f"{count} open connections", timeout)

    async def wait_all_closed(self, timeout: float = 60) -> None:
        """Until every connection it accepted has been closed by its peer."""
        await self._until(lambda: self.open == 0, "every connection closed by its peer", timeout)

    async def _until(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(
                f"waited {timeout:g} s for {what} at the hanging homeserver: "
                f"{self.open} open, {self.accepted} accepted in all"
            ) from None


class _Hanging(asyncio.Protocol):
    def __init__(self, server: Silent) -> None:
        self._server = server
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        self._transport = transport
        server.held.add(transport)
        if server.counted is not None and not _from(server.counted, transport):
            server.others += 1
            return
        server.accepted += 1
        # A peer that hung up before this one connected may not have been seen
        # by this loop yet (its EOF waits behind this accept): the kernel knows.
        for gone in [t for t in server.connections if _peer_hung_up(t)]:
            server.connections.discard(gone)
        server.connections.add(transport)
        server.most_open = max(server.most_open, server.open)

    def data_received(self, data: bytes) -> None:
        pass  # dropped: no answer, ever

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server.held.discard(self._transport)
            self._server.connections.discard(self._transport)


def _peer_hung_up(transport: asyncio.BaseTransport) -> bool:
    """Whether the peer has closed its side (FIN or RST arrived), read or not."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return True
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
    except OSError:
        return True
    return info[0] != _TCP_ESTABLISHED


def _from(pid: int, transport: asyncio.BaseTransport) -> bool:
    """Whether the peer of `transport` is a socket of process `pid` (on this machine)."""
    peer = transport.get_extra_info("peername")[:2]
    try:
        sockets = psutil.Process(pid).net_connections("tcp")
    except psutil.Error:
        return False
    return any(tuple(sock.laddr) == peer for sock in sockets)
