#!/usr/bin/env python3
"""Time from `homeport up` until two homeservers federate, against bare Synapse.

Each round starts from a fresh data folder (fresh databases), then measures:

  homeport  `homeport up` launched -> both ready -> a message sent on internal
            arrives on external;
  bare      two `python -m synapse.app.homeserver` processes started by hand
            with the same rendered configs -> the same steps.

Prints each round, the medians, the ratio (target: at most 1.3x) and the peak
memory (RSS) of the whole deployment, Homeport's own process included.

    .venv/bin/python bench/startup.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.config.deployment import Deployment  # noqa: E402
from homeport.config.homeserver import Homeserver  # noqa: E402
from homeport.config.loader import load_deployment  # noqa: E402
from homeport.homeserver.first_start import extra_config_files  # noqa: E402
from homeport.homeserver.process import probe, synapse_command  # noqa: E402
from homeport.layout import DeploymentLayout  # noqa: E402
from homeport.runtime.prepare import materialize  # noqa: E402
from homeport.synapse.admin_api import SynapseAdmin  # noqa: E402
from homeport.synapse.api import SynapseClient  # noqa: E402
from homeport.trust import client_ssl_context  # noqa: E402
from tests.harness import free_port_run  # noqa: E402


class PeakRss:
    """Samples the summed RSS of a process tree every 50 ms."""

    def __init__(self, pids: list[int]) -> None:
        self._roots = [psutil.Process(pid) for pid in pids]
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for root in self._roots:
                try:
                    for proc in [root, *root.children(recursive=True)]:
                        total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


async def message_crosses(deployment: Deployment) -> None:
    """Register two users, external creates a room, internal joins and speaks."""
    ssl_context = client_ssl_context(deployment)
    layout = DeploymentLayout(deployment.data_dir)
    internal = deployment.homeservers["internal"]
    external = deployment.homeservers["external"]
    tag = secrets.token_hex(4)
    users = {}
    for name, hs in (("internal", internal), ("external", external)):
        shared = layout.homeserver(name).registration_shared_secret.read_text().strip()
        async with SynapseClient(hs.base_url, ssl_context) as client:
            users[name] = await SynapseAdmin(client).register(
                shared, f"bench{tag}", secrets.token_urlsafe(12), False
            )

    def client(name: str) -> httpx.AsyncClient:
        hs = deployment.homeservers[name]
        return httpx.AsyncClient(
            base_url=hs.base_url,
            verify=ssl_context,
            headers={"Authorization": f"Bearer {users[name].access_token}"},
            timeout=60,
        )

    async with client("internal") as alice, client("external") as bob:
        created = await bob.post(
            "/_matrix/client/v3/createRoom",
            json={"preset": "public_chat", "room_alias_name": f"bench{tag}"},
        )
        created.raise_for_status()
        room_id = created.json()["room_id"]
        alias = quote(f"#bench{tag}:{external.server_name}")
        (await alice.post(f"/_matrix/client/v3/join/{alias}", json={})).raise_for_status()
        body = f"ping {tag}"
        sent = await alice.put(
            f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{tag}",
            json={"msgtype": "m.text", "body": body},
        )
        sent.raise_for_status()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            page = await bob.get(
                f"/_matrix/client/v3/rooms/{quote(room_id)}/messages",
                params={"dir": "b", "limit": 10},
            )
            if any(e.get("content", {}).get("body") == body for e in page.json()["chunk"]):
                return
            await asyncio.sleep(0.05)
    raise RuntimeError("the message never arrived")


def fresh_deployment(parent: Path, label: str) -> Path:
    directory = parent / label
    port = free_port_run(3)
    subprocess.run(
        [sys.executable, "-m", "homeport", "init", str(directory), "--port", str(port)],
        check=True,
        capture_output=True,
    )
    return directory / "homeport.yaml"


def run_homeport(config: Path) -> tuple[float, int]:
    deployment, _ = load_deployment(config)
    started = time.monotonic()
    up = subprocess.Popen(
        [sys.executable, "-m", "homeport", "up", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rss = PeakRss([up.pid])
    try:
        asyncio.run(ready_then_message(deployment))
        elapsed = time.monotonic() - started
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
        peak = rss.stop()
    return elapsed, peak


def run_bare(config: Path) -> tuple[float, int]:
    deployment, _ = load_deployment(config)
    materialize(deployment)  # the same rendered configs, written before the clock starts
    layout = DeploymentLayout(deployment.data_dir)
    started = time.monotonic()
    # The same command line `up` gives each Synapse, with the file it adds on the
    # start that creates the database (Synapse's background updates unpaced).
    extra = {
        name: extra_config_files(deployment.homeservers[name], layout.homeserver(name))
        for name in deployment.homeservers
    }
    processes = [
        subprocess.Popen(
            synapse_command(layout.homeserver(name), extra[name]),
            cwd=layout.homeserver(name).root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in deployment.homeservers
    ]
    rss = PeakRss([p.pid for p in processes])
    try:
        asyncio.run(ready_then_message(deployment))
        elapsed = time.monotonic() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
        peak = rss.stop()
    return elapsed, peak


async def ready(hs: Homeserver, ssl_context: ssl.SSLContext) -> str | None:
    """Poll every 50 ms: a poller that backs off would measure its own pauses."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        version = await probe(hs, ssl_context, timeout=1.0)
        if version is not None:
            return version
        await asyncio.sleep(0.05)
    return None


async def ready_then_message(deployment: Deployment) -> None:
    ssl_context = client_ssl_context(deployment)
    versions = await asyncio.gather(
        *(ready(hs, ssl_context) for hs in deployment.homeservers.values())
    )
    if not all(versions):
        raise RuntimeError("a homeserver did not become ready")
    await message_crosses(deployment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    homeport_times, bare_times, homeport_peaks, bare_peaks = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="homeport-bench-") as tmp:
        for round_number in range(1, args.rounds + 1):
            # Alternate the order so that neither side always runs on a warmer cache.
            order = ("bare", "homeport") if round_number % 2 else ("homeport", "bare")
            for kind in order:
                config = fresh_deployment(Path(tmp), f"{kind}{round_number}")
                if kind == "homeport":
                    elapsed, peak = run_homeport(config)
                    homeport_times.append(elapsed)
                    homeport_peaks.append(peak)
                else:
                    elapsed, peak = run_bare(config)
                    bare_times.append(elapsed)
                    bare_peaks.append(peak)
                print(
                    f"round {round_number} {kind:8} {elapsed:6.2f} s  peak {peak / 2**20:6.0f} MiB"
                )
    homeport_median = statistics.median(homeport_times)
    bare_median = statistics.median(bare_times)
    ratio = homeport_median / bare_median
    print()
    print(f"up -> message crosses, homeport (median of {args.rounds}):  {homeport_median:6.2f} s")
    print(f"up -> message crosses, bare Synapse (same run):  {bare_median:6.2f} s")
    print(f"ratio homeport / bare: {ratio:.2f}x (target <= 1.3x)")
    print(
        f"peak memory, whole deployment: homeport {max(homeport_peaks) / 2**20:.0f} MiB, "
        f"bare {max(bare_peaks) / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    from bench.run_info import announced

    with announced():
        main()
