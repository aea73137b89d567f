"""Homeport's own services in one shared process, as `up` sees them.

The admin website, the conference service, each audit bot and group sync are
Python services of Homeport. Each in a process of its own cost 65-105 MiB and a
second of imports at start-up, competing with the homeservers for the CPU. So
they run as tasks of one host process (`homeport host`, `host_process.py`),
started when the first of them starts and stopped when the last one stops.

Every hosted service stays a service of its own for the supervisor: started,
held, stopped and restarted with backoff one by one, with its own state in
`status`. What isolation remains: an exception in one service ends only that
service (the host reports it, the supervisor starts it again); a crash of the
host process itself (a fault in native code, the kernel's OOM killer) stops
every hosted service at once, and the supervisor starts each again. The
homeservers are separate processes and never affected.

The supervisor and the host speak JSON lines over a socket pair: `{"start": NAME}`
and `{"stop": NAME}` down, `{"exited": NAME, "code": N}` up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from homeport.supervision import processes
from homeport.supervision.service import RestartPolicy, Running

log = logging.getLogger("homeport.supervisor")

STOP_GRACE_S = 15.0  # a hosted service's own shutdown takes at most 5-10 s


class HostedRun:
    """One run of a hosted service: what the supervisor waits on, like a process."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self.returncode: int | None = None
        self._ended = asyncio.Event()

    def end(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._ended.set()

    async def wait(self) -> int:
        await self._ended.wait()
        assert self.returncode is not None
        return self.returncode


class ServiceHost:
    """The one host process of a deployment's hosted services.

    Each hosted service registers its listening socket (bound by `up` before
    anything starts) with `add`; the host inherits them all.
    """

    def __init__(self, config_path: Path, cwd: Path, console_log: Path, niceness: int = 0) -> None:
        self._config_path = config_path.resolve()
        self._cwd = cwd
        self.console_log = console_log
        self._niceness = niceness
        self._sockets: dict[str, socket.socket] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._runs: dict[str, HostedRun] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    def add(self, name: str, listening: socket.socket) -> None:
        self._sockets[name] = listening

    async def start(self, name: str) -> HostedRun:
        """Start `name` in the host, starting the host first if it is not running."""
        async with self._starting:
            if self._process is None or self._process.returncode is not None:
                await self._launch()
        assert self._process is not None
        run = HostedRun(name, self._process.pid)
        self._runs[name] = run
        await self._send({"start": name})
        return run

    async def stop(self, run: Running) -> None:
        """Ask the host to stop the service of `run`; once none runs, the host exits."""
        assert isinstance(run, HostedRun)
        if run.returncode is None:
            await self._send({"stop": run.name})
            try:
                await asyncio.wait_for(run.wait(), STOP_GRACE_S)
            except TimeoutError:
                log.warning(
                    "hosted service did not stop: host stopped", extra={"service": run.name}
                )
                await self._terminate()
        if not any(r.returncode is None for r in self._runs.values()):
            await self._terminate()

    async def _launch(self) -> None:
        ours, theirs = socket.socketpair()
        fds = {name: sock.fileno() for name, sock in self._sockets.items()}
        command = [sys.executable, "-m", "homeport", "host", "-c", str(self._config_path)]
        command += ["--control", str(theirs.fileno())]
        for name, fd in fds.items():
            command += ["--socket", f"{name}={fd}"]
        try:
            self._process = await processes.spawn(
                command,
                cwd=self._cwd,
                console_log=self.console_log,
                label="Homeport's services",
                pass_fds=(theirs.fileno(), *fds.values()),
                niceness=self._niceness,
            )
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_connection(sock=ours)
        self._reader_task = asyncio.create_task(self._read(reader, self._process))

    async def _read(
        self, reader: asyncio.StreamReader, process: asyncio.subprocess.Process
    ) -> None:
        """Ends each run the host reports ended; every run of this host once it dies."""
        while line := await reader.readline():
            try:
                event = json.loads(line)
                run = self._runs.get(event["exited"])
                code = int(event["code"])
            except (ValueError, KeyError, TypeError):
                continue
            if run is not None and run.pid == process.pid:
                run.end(code)
        code = await process.wait()
        for run in self._runs.values():
            if run.pid == process.pid:
                run.end(code)

    async def _send(self, message: dict[str, str]) -> None:
        if self._writer is None or self._writer.is_closing():
            return  # the host is gone: its runs end through `_read`
        with contextlib.suppress(ConnectionError):
            self._writer.write(json.dumps(message).encode() + b"\n")
            await self._writer.drain()

    async def _terminate(self) -> None:
        process, self._process = self._process, None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if process is not None:
            await processes.terminate(process, grace=STOP_GRACE_S)
        if self._reader_task is not None:
            await self._reader_task
            self._reader_task = None


class HostedService:
    """A service of the supervisor that runs inside the shared host process."""

    def __init__(
        self,
        host: ServiceHost,
        name: str,
        kind: str,
        url: str,
        bind: Callable[[], socket.socket],
        health: Callable[[], Awaitable[str | None]],
        logs: tuple[Path, ...],
        after: tuple[str, ...] = (),
        restart: RestartPolicy = RestartPolicy(),  # noqa: B008 (frozen)
    ) -> None:
        self.name = name
        self.kind = kind
        self.url = url
        self.after = after
        self.restart = restart
        self._host = host
        self._bind = bind
        self._health = health
        self._logs = logs
        self._socket: socket.socket | None = None

    def prepare(self) -> None:
        self._socket = self._bind()
        self._host.add(self.name, self._socket)

    async def spawn(self) -> Running:
        return await self._host.start(self.name)

    async def wait_ready(self, process: Running) -> str | None:
        return await processes.poll_until(self._health, process, timeout=120)

    async def terminate(self, process: Running) -> None:
        await self._host.stop(process)

    def log_tail(self) -> str:
        return processes.tails([*self._logs, self._host.console_log])

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def https_hosted(
    host: ServiceHost,
    name: str,
    kind: str,
    *,
    address: str,
    port: int,
    tls_host: str,
    port_key: str,
    ssl_context: ssl.SSLContext,
    logs: tuple[Path, ...] = (),
    after: tuple[str, ...] = (),
) -> HostedService:
    """A hosted HTTPS service on `address`:`port`, ready once /health answers over TLS
    verified for `tls_host`; `port_key` is the setting to change when the port is taken."""
    from homeport.supervision.serving import bind_listener, https_health

    return HostedService(
        host,
        name,
        kind,
        f"https://{tls_host}:{port}",
        lambda: bind_listener(address, port, f"the {kind}", port_key),
        lambda: https_health(address, port, tls_host, ssl_context),
        logs=logs,
        after=after,
    )
