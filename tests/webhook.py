"""A webhook receiver the tests run: every POST it gets, as JSON, with its headers.

Plain HTTP on loopback (what `alerts.webhook.url` allows besides https://), in
a thread of the test process, answering 200 unless told to fail.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Call:
    at: float  # time.time() when it arrived
    path: str
    headers: dict[str, str]
    body: Any
    answered: int  # the status the receiver answered with


class Receiver:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.failing = False  # answer 503 while set
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def received(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def wait_for(self, matches: Callable[[Call], bool], what: str, timeout: float) -> Call:
        """The first call that matches, waiting up to `timeout` s; else an AssertionError
        listing what came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [c for c in self.received() if matches(c)]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(
            f"no webhook call {what} within {timeout:g} s; got: "
            + json.dumps([c.body for c in self.received()], indent=1)
        )

    def _record(self, path: str, headers: dict[str, str], body: Any) -> int:
        with self._lock:
            status = 503 if self.failing else 200
            self.calls.append(Call(time.time(), path, headers, body, status))
            return status

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                status = receiver._record(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
