"""Inside `homeport host`: several of Homeport's services as tasks of one event loop.

Each hosted service is an async function of its listening socket and a stop event
(`HostedMain`); it returns once the event is set. It runs in a task of its own, with
`homeport.logs.SERVICE` naming it, so its log file takes only its records. An
exception ends that service alone: the host logs it into the service's log and
reports the exit to `up` (`host.py`), which starts it again with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable

from homeport.logs import SERVICE

HostedMain = Callable[[socket.socket, asyncio.Event], Awaitable[None]]

STOP_GRACE_S = 12.0  # then the task is cancelled


class _Host:
    def __init__(
        self,
        mains: Callable[[str], HostedMain],
        sockets: dict[str, int],
        writer: asyncio.StreamWriter,
    ) -> None:
        self._mains = mains
        self._sockets = sockets
        self._writer = writer
        self._stops: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str) -> None:
        if name in self._tasks:
            return  # running: `up` asks again only after it reported its end
        if name not in self._sockets:
            print(f"--- no socket for {name}: `up` did not bind one", file=sys.stderr, flush=True)
            self._report({"exited": name, "code": 1})
            return
        stop = asyncio.Event()
        self._stops[name] = stop
        SERVICE.set(name)  # copied into the task's context, and into its tasks'
        try:
            self._tasks[name] = asyncio.create_task(self._run(name, stop), name=name)
        finally:
            SERVICE.set(None)

    async def _run(self, name: str, stop: asyncio.Event) -> None:
        # uvicorn closes the sockets it served on: each run gets a copy of the one
        # `up` bound, which the host keeps for the next run.
        listening = socket.socket(fileno=os.dup(self._sockets[name]))
        code = 0
        try:
            await self._mains(name)(listening, stop)
        except asyncio.CancelledError:
            code = 0 if stop.is_set() else 1
        except Exception:
            code = 1
            logging.getLogger("homeport").exception("the service failed")  # into its log
            print(f"--- hosted service {name} failed:", file=sys.stderr, flush=True)
            traceback.print_exc(file=sys.stderr)
        finally:
            listening.close()
            self._tasks.pop(name, None)
            self._stops.pop(name, None)
            self._report({"exited": name, "code": code})

    def stop(self, name: str) -> None:
        stop, task = self._stops.get(name), self._tasks.get(name)
        if stop is None or task is None:
            return
        stop.set()
        asyncio.get_running_loop().call_later(STOP_GRACE_S, task.cancel)

    def stop_all(self) -> None:
        for name in list(self._tasks):
            self.stop(name)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    def _report(self, event: dict[str, object]) -> None:
        if not self._writer.is_closing():
            self._writer.write(json.dumps(event).encode() + b"\n")


async def run_host(
    mains: Callable[[str], HostedMain], control_fd: int, sockets: dict[str, int]
) -> None:
    """Serve `up`'s commands until it closes the control socket or sends SIGTERM."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=control_fd))
    host = _Host(mains, sockets, writer)
    loop = asyncio.get_running_loop()
    ending = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ending.set)

    async def commands() -> None:
        while line := await reader.readline():
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                command = json.loads(line)
                if "start" in command:
                    host.start(str(command["start"]))
                elif "stop" in command:
                    host.stop(str(command["stop"]))
        ending.set()  # `up` is gone

    listening = asyncio.create_task(commands())
    await ending.wait()
    listening.cancel()
    host.stop_all()
    await host.drain()
    writer.close()
