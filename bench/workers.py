#!/usr/bin/env python3
"""Synapse workers against the monolith, in the same run: latency, /sync throughput, CPU.

Two deployments one after the other, identical but for `workers:` on
internal: both on this machine's PostgreSQL, behind the nginx `up` runs
(`proxy.managed`), server names resolving to it (scripts/test's
/etc/hosts names). The worker layout is generic 2, federation senders 2,
event persister 1 (Redis on 127.0.0.1:6379). Rate limits relaxed as in the
tests: the figures are Synapse's, not its limits'.

  latency internal -> external   a user of internal sends MESSAGES messages one
                                 at a time into a room shared with a user of
                                 external; from the send's return until
                                 external's user sees it in /sync: p50, p95
                                 (target: workers' p95 within 1.3x of the
                                 monolith's)
  /sync throughput               CLIENTS users of internal, each in the same
                                 room, each syncing incrementally (timeout 0)
                                 as fast as it can for SECONDS while a sender
                                 posts a message every 0.2 s: completed
                                 /sync per second, and the ratio
  CPU share                      during the /sync phase, the machine's CPU time
                                 (every core) by process type: main process,
                                 generic workers, federation senders, event
                                 persister, nginx, PostgreSQL, this load
                                 generator, and what stayed idle

    .venv/bin/python bench/workers.py --clients 200 --seconds 20 --messages 50
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.trust import client_ssl_context  # noqa: E402
from homeport.users import create_user  # noqa: E402
from tests.conftest import POSTGRES_ADMIN_DSN  # noqa: E402
from tests.harness import (  # noqa: E402
    RunningDeployment,
    access_token,
    edit_yaml,
    free_port_run,
    init_deployment,
)

PROXY = "127.10.0.1"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def new_database() -> str:
    name = f"homeport_bench_{secrets.token_hex(4)}"
    connection = psycopg2.connect(POSTGRES_ADMIN_DSN)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE DATABASE {name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
    connection.close()
    return name


def drop_database(name: str) -> None:
    connection = psycopg2.connect(POSTGRES_ADMIN_DSN)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    connection.close()


def configure(directory: Path, database: str, workers: bool) -> Path:
    config = init_deployment(directory)
    proxy_port = free_port_run(1)
    port_base = free_port_run(8)

    def edit(data: Any) -> None:
        for name, hs in data["homeservers"].items():
            hs["server_name"] = f"{name}.homeport.test:{proxy_port}"
        internal = data["homeservers"]["internal"]
        internal["database"] = f"postgresql://postgres@127.0.0.1:5432/{database}"
        # Hundreds of joins into one room: Synapse's per-room join limit would queue them.
        internal["synapse"]["rc_joins_per_room"] = {"per_second": 1000, "burst_count": 1000}
        if workers:
            internal["workers"] = {
                "generic": 2,
                "federation_senders": 2,
                "event_persisters": 1,
                "port_base": port_base,
            }
        data["admin"]["host"] = "admin.homeport.test"
        data["conference"]["host"] = "meet.homeport.test"
        data["proxy"] = {"address": PROXY, "port": proxy_port, "managed": True}
        data["redis"] = {"url": "redis://127.0.0.1:6379"}

    edit_yaml(config, edit)
    return config


class Client:
    """A logged-in user of one homeserver, through the proxy."""

    def __init__(self, base_url: str, context: Any, token: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            verify=context,
            timeout=60,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=4),
        )
        self.since: str | None = None

    async def sync(self, timeout_ms: int = 0) -> dict[str, Any]:
        params = {"timeout": str(timeout_ms)}
        if self.since:
            params["since"] = self.since
        answer = await self.http.get("/_matrix/client/v3/sync", params=params)
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        self.since = body["next_batch"]
        return body

    async def send(self, room: str, body: str) -> None:
        answer = await self.http.put(
            f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/{secrets.token_hex(8)}",
            json={"msgtype": "m.text", "body": body},
        )
        answer.raise_for_status()


async def user(running: RunningDeployment, name: str, localpart: str, context: Any) -> Client:
    deployment = running.deployment
    password = secrets.token_urlsafe(12)
    user_id = await create_user(deployment, name, localpart, password, False)
    token = (await access_token(deployment, name, user_id, password))[0]
    client = Client(deployment.homeservers[name].base_url, context, token)
    client.user_id = user_id  # type: ignore[attr-defined]
    return client


async def latency(running: RunningDeployment, context: Any, messages: int) -> list[float]:
    alice = await user(running, "internal", f"a{secrets.token_hex(3)}", context)
    bob = await user(running, "external", f"b{secrets.token_hex(3)}", context)
    # On external: internal's starter policy keeps its own rooms off federation.
    created = await bob.http.post("/_matrix/client/v3/createRoom", json={"preset": "public_chat"})
    created.raise_for_status()
    room = created.json()["room_id"]
    external = running.deployment.homeservers["external"].server_name
    joined = await alice.http.post(
        f"/_matrix/client/v3/join/{quote(room)}", params={"server_name": external}
    )
    joined.raise_for_status()
    await bob.sync()
    found: list[float] = []
    for i in range(messages):
        text = f"latency {i} {secrets.token_hex(4)}"
        await alice.send(room, text)
        sent = time.monotonic()
        while True:
            body = await bob.sync(timeout_ms=5000)
            events = body.get("rooms", {}).get("join", {}).get(room, {})
            timeline = events.get("timeline", {}).get("events", [])
            if any(e.get("content", {}).get("body") == text for e in timeline):
                found.append(time.monotonic() - sent)
                break
            assert time.monotonic() - sent < 60, f"message {i} never arrived"
    for client in (alice, bob):
        await client.http.aclose()
    return found


def cpu_by_type(root: int) -> dict[str, float]:
    """CPU seconds of `up`'s descendants by process type, of PostgreSQL, of this
    load generator, and the machine's idle seconds (all cores)."""
    found: dict[str, float] = {}
    own = psutil.Process().cpu_times()
    found["load generator (this script)"] = own.user + own.system
    found["idle (machine)"] = psutil.cpu_times().idle
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "postgres":
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            found["PostgreSQL"] = found.get("PostgreSQL", 0.0) + times.user + times.system
    for process in psutil.Process(root).children(recursive=True):
        try:
            line = " ".join(process.cmdline())
            times = process.cpu_times()
        except psutil.Error:
            continue
        if "generic_worker" in line:
            kind = "worker " + line.split("workers/")[-1].split(".yaml")[0].rsplit("-", 1)[0]
        elif "synapse.app.homeserver" in line:
            kind = "main process (" + ("internal" if "/internal/" in line else "external") + ")"
        elif "nginx" in line:
            kind = "nginx"
        else:
            kind = "homeport services"
        found[kind] = found.get(kind, 0.0) + times.user + times.system
    return found


async def sync_throughput(
    running: RunningDeployment, context: Any, clients: int, seconds: float
) -> tuple[float, dict[str, float]]:
    sender = await user(running, "internal", f"s{secrets.token_hex(3)}", context)
    created = await sender.http.post(
        "/_matrix/client/v3/createRoom", json={"preset": "public_chat"}
    )
    room = created.json()["room_id"]
    limit = asyncio.Semaphore(16)  # setting up is not what is measured

    async def syncer(i: int) -> Client:
        async with limit:
            client = await user(running, "internal", f"c{i}{secrets.token_hex(2)}", context)
            (await client.http.post(f"/_matrix/client/v3/join/{quote(room)}")).raise_for_status()
            await client.sync()
            return client

    syncers = await asyncio.gather(*(syncer(i) for i in range(clients)))
    assert running.process is not None
    before = cpu_by_type(running.process.pid)
    done = 0
    stop = time.monotonic() + seconds

    async def loop(client: Client) -> None:
        nonlocal done
        while time.monotonic() < stop:
            await client.sync()
            done += 1

    async def talk() -> None:
        while time.monotonic() < stop:
            await sender.send(room, "tick")
            await asyncio.sleep(0.2)

    started = time.monotonic()
    await asyncio.gather(talk(), *(loop(c) for c in syncers))
    elapsed = time.monotonic() - started
    after = cpu_by_type(running.process.pid)
    used = {kind: after.get(kind, 0.0) - before.get(kind, 0.0) for kind in after}
    for client in [sender, *syncers]:
        await client.http.aclose()
    return done / elapsed, used


async def measure(
    workers: bool, clients: int, seconds: float, messages: int
) -> tuple[list[float], float, dict[str, float]]:
    database = new_database()
    with tempfile.TemporaryDirectory(prefix="homeport-bench-workers-") as folder:
        config = configure(Path(folder), database, workers)
        running = RunningDeployment(config)
        try:
            running.start(timeout=300)
            if workers:
                await asyncio.sleep(5)  # the workers start once the main process is ready
            context = client_ssl_context(running.deployment)
            delays = await latency(running, context, messages)
            rate, cpu = await sync_throughput(running, context, clients, seconds)
        finally:
            if running.process is not None:
                running.stop()
            running.kill_leftovers()
            drop_database(database)
    return delays, rate, cpu


def report(label: str, delays: list[float], rate: float, cpu: dict[str, float]) -> None:
    """Shares of the machine's CPU time during the /sync phase (every core, idle included)."""
    total = sum(cpu.values()) or 1.0
    shares = ", ".join(
        f"{kind} {100 * seconds / total:.0f}%"
        for kind, seconds in sorted(cpu.items(), key=lambda item: -item[1])
        if seconds / total >= 0.005
    )
    print(
        f"{label}: latency internal->external p50 {1000 * statistics.median(delays):.0f} ms, "
        f"p95 {1000 * percentile(delays, 0.95):.0f} ms; /sync {rate:.0f} per second"
    )
    print(f"  machine CPU time during /sync ({total:.1f} s, every core): {shares}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--messages", type=int, default=50)
    args = parser.parse_args()
    mono = await measure(False, args.clients, args.seconds, args.messages)
    report("monolith (baseline)", *mono)
    split = await measure(True, args.clients, args.seconds, args.messages)
    report("workers (generic 2, federation senders 2, event persister 1)", *split)
    p95_ratio = percentile(split[0], 0.95) / percentile(mono[0], 0.95)
    print(f"  latency p95 workers / monolith: {p95_ratio:.2f} (target <= 1.3)")
    print(f"  /sync throughput workers / monolith: {split[1] / mono[1]:.2f}")


if __name__ == "__main__":
    from bench.run_info import announced

    with announced():
        asyncio.run(main())
