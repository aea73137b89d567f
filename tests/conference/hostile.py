"""A hostile partner homeserver on loopback, and a canary that counts who knocks.

`Partner` is a small real HTTPS server (HTTP/1.1, one request a connection)
that answers each path as a test says: redirects, delegations, floods. It
counts the requests it got and how much of a flood it managed to send before
the other side hung up. `Canary` is a TCP listener standing for something
private on this machine (an admin API, an audit bot): it only counts
connections.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeport import pki

FLOOD_BYTES = 10 * 1024 * 1024
_CHUNK = b" " * 65536


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
