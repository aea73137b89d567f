"""Ports for the servers tests start, chosen so that nothing else can take them.

Two things used to take a test's port between the check and the bind:

- the kernel, which gives every outgoing connection a local port from
  `ip_local_port_range` (32768-60999 here): ports are now chosen outside it;
- another test worker (pytest-xdist runs three), which could pick the same
  free port a moment later: each port handed out is reserved in a lock folder
  shared by every test process on the machine until its process ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import socket
import tempfile
from pathlib import Path

from homeport.supervision.processes import pid_alive

LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
RESERVED = Path(tempfile.gettempdir()) / "homeport-test-ports"
LOWEST = 20000  # above the well-known and registered services a machine may run
HIGHEST = 65000
_mine: set[Path] = set()


def local_port_range(text: str | None = None) -> tuple[int, int]:
    """The kernel's range for outgoing connections' ports."""
    if text is None:
        try:
            text = LOCAL_PORT_RANGE.read_text()
        except OSError:
            return 32768, 60999  # Linux's default
    low, high = (int(part) for part in text.split())
    return low, high


def windows(local: tuple[int, int], lowest: int = LOWEST, highest: int = HIGHEST) -> list[range]:
    """The stretches of [lowest, highest] outside the kernel's range, biggest first."""
    low, high = local
    found = [range(lowest, min(low, highest + 1)), range(max(high + 1, lowest), highest + 1)]
    usable = [w for w in found if len(w) >= 100]
    if not usable:
        raise RuntimeError(
            f"no room for test ports outside the local port range {low}-{high}: narrow "
            f"{LOCAL_PORT_RANGE} (e.g. 32768 60999)"
        )
    return sorted(usable, key=len, reverse=True)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _reserve(port: int) -> bool:
    """Claim `port` for this process, unless a live test process holds it."""
    RESERVED.mkdir(exist_ok=True)
    path = RESERVED / str(port)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text() or "0")
            except (OSError, ValueError):
                holder = 0
            if holder and pid_alive(holder):
                return False
            with contextlib.suppress(OSError):
                path.unlink()  # its process is gone: the port is free to claim again
            continue
        with os.fdopen(fd, "w") as file:
            file.write(str(os.getpid()))
        _mine.add(path)
        return True
    return False


def _release(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
        _mine.discard(path)


def free_port_run(count: int) -> int:
    """The first of `count` consecutive ports, bindable now and reserved for this process."""
    stretches = windows(local_port_range())
    for _ in range(500):
        stretch = random.choice(stretches)
        base = random.randint(stretch.start, stretch.stop - count)
        claimed: list[Path] = []
        for port in range(base, base + count):
            if not _reserve(port):
                break
            claimed.append(RESERVED / str(port))
            if not _bindable(port):
                break
        else:
            return base
        _release(claimed)
    raise RuntimeError(f"no {count} consecutive free ports outside the local port range")


atexit.register(lambda: _release(list(_mine)))
