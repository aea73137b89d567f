"""A push gateway for tests: what Synapse's pushers POST to `/_matrix/push/v1/notify`.

Plain HTTP/1.1, one request a connection: Synapse's HTTP pusher takes any
scheme (the push gateway API asks for HTTPS, but that is the gateway's side).
Each notification is kept with the process that held the socket it came
from, found while the connection is open: which Synapse process pushed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

NOTIFY_PATH = "/_matrix/push/v1/notify"


@dataclass(frozen=True)
class Notification:
    body: dict[str, Any]  # {"notification": {...}}
    sender_pid: int | None  # the process whose socket sent it, None if not found

    @property
    def notification(self) -> dict[str, Any]:
        value: dict[str, Any] = self.body["notification"]
        return value


def owner(address: tuple[str, int]) -> int | None:
    """The process holding the TCP socket bound to `address` on this machine."""
    for sock in psutil.net_connections("tcp"):
        if sock.laddr and tuple(sock.laddr[:2]) == address and sock.pid is not None:
            return sock.pid
    return None


class PushGateway:
    """Answers every notify with `{"rejected": []}` and keeps what it was sent."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.port = 0
        self.received: list[Notification] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}{NOTIFY_PATH}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.address, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(
        self, wanted: Callable[[Notification], bool], what: str, timeout: float = 120
    ) -> Notification:
        """The first notification `wanted` accepts; an AssertionError naming `what` if none."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = [n for n in self.received if wanted(n)]
                    if found:
                        return found[0]
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(
                f"the push gateway at {self.url} got no {what} within {timeout:g} s; "
                f"it got {len(self.received)} notification(s): {self.received}"
            ) from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            sender = owner(writer.get_extra_info("peername")[:2])
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if method == "POST" and target == NOTIFY_PATH:
                self.received.append(Notification(json.loads(body), sender))
                status, answer = "200 OK", b'{"rejected": []}'
            else:
                status, answer = "404 Not Found", b'{"errcode": "M_NOT_FOUND"}'
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
