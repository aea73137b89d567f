#!/usr/bin/env python3
"""Synapse workers against the monolith, interleaved in one run: latency, /sync throughput, CPU.

Two deployments running side by side, identical but for `workers:` on
internal: both on this machine's PostgreSQL (a database each), behind the
nginx `up` runs (`proxy.managed`), server names resolving to it
(scripts/test's /etc/hosts names), on the settings `homeport init` writes.
The worker layout is generic 2, federation senders 2, event persister 1
(Redis on 127.0.0.1:6379). The baseline is the same work done by Synapse
alone (the monolith), in rounds interleaved with the workers' (workers,
monolith, workers, monolith...), so that both sides see the same moments of
a shared machine; while one side is measured the other idles.

Measuring starts once every worker answers `/health`, both homeservers answer
through the proxy, Synapse's background updates of the fresh databases are
done, and the remote join is complete (the room is in the joiner's own sync:
a partial-state join lets a worker give events partial state;
docs/synapse-notes.md).

Two shipped limits would measure themselves, not Synapse: the senders post
5 messages a second, and as fast as they arrive (Homeport's `rc_message`:
2 a second), and CLIENTS users join one room (Synapse's `rc_joins_per_room`:
1 a second). The benchmark's
users on internal are exempt from rate limits through Synapse's admin API
(`override_ratelimit`), the server's settings untouched; users get their
tokens from shared-secret registration, so no login limit applies either.

Per round and side:

  latency internal -> external   a user of internal sends MESSAGES messages one
                                 at a time into a room shared with a user of
                                 external; from the send's return until
                                 external's user sees it in /sync: p50, p95
                                 (target: workers' p95 within 1.3x of the
                                 monolith's, medians of the rounds)
  /sync throughput               CLIENTS users of internal, each in the same
                                 room, each syncing incrementally (timeout 0)
                                 as fast as it can for SECONDS while a sender
                                 posts a message every 0.2 s: completed
                                 /sync per second, and the ratio
  CPU share                      during the /sync phases, the machine's CPU
                                 time (every core) by process type: main
                                 process, generic workers, federation
                                 senders, event persister, nginx, the side's
                                 PostgreSQL connections, this load generator,
                                 other processes (the idle side, anything
                                 else the machine runs) and what stayed idle

    .venv/bin/python bench/workers.py --rounds 3 --clients 200 --seconds 20 --messages 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.config.workers import WorkerSpec  # noqa: E402
from homeport.credentials import registration_shared_secret  # noqa: E402
from homeport.homeserver.render import SMALL_ORGANISATION_RATE_LIMITS  # noqa: E402
from homeport.homeserver.worker_process import worker_health  # noqa: E402
from homeport.synapse.admin_api import SynapseAdmin  # noqa: E402
from homeport.synapse.api import RegisteredUser, SynapseClient  # noqa: E402
from homeport.trust import client_ssl_context  # noqa: E402
from tests.conftest import POSTGRES_ADMIN_DSN  # noqa: E402
from tests.harness import RunningDeployment, edit_yaml, init_deployment  # noqa: E402
from tests.ports import free_port_run  # noqa: E402

PROXY = "127.10.0.1"
WORKERS = {"generic": 2, "federation_senders": 2, "event_persisters": 1}
READY_TIMEOUT_S = 300
SETUP_CONCURRENCY = 16  # setting up is not what is measured
CONNECTIONS_PER_PROCESS = 10  # `cp_max` of each Synapse process (homeport/homeserver/render.py)
MACHINE = "machine"  # every core's time, in `cpu_by_type`


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


def postgres_connections() -> tuple[int, int]:
    """(PostgreSQL's max_connections, connections open now), on this shared server."""
    connection = psycopg2.connect(POSTGRES_ADMIN_DSN)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int, COUNT(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend'"
        )
        allowed, used = cursor.fetchone()
    connection.close()
    return int(allowed), int(used)


def enough_connections(needed: int, patience: float) -> None:
    """Wait (up to `patience` s) until PostgreSQL has `needed` connections to spare.

    Both deployments share this machine's PostgreSQL with whatever else runs on
    it (test runs hold 40 and more); when it runs out, Synapse answers 500
    ("too many clients already") and the round measures that, not Synapse.
    """
    deadline = time.monotonic() + patience
    allowed, used = postgres_connections()
    print(
        f"PostgreSQL: {used} of {allowed} connections in use; both deployments may open {needed}",
        flush=True,
    )
    while allowed - used < needed and time.monotonic() < deadline:
        time.sleep(5)
        allowed, used = postgres_connections()
    if allowed - used < needed:
        print(
            f"  warning: only {allowed - used} free after {patience:.0f} s: "
            "/sync may fail with 500, counted per round",
            flush=True,
        )


def drop_database(name: str) -> None:
    connection = psycopg2.connect(POSTGRES_ADMIN_DSN)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    connection.close()


def configure(directory: Path, database: str, workers: bool) -> Path:
    """The starter deployment as `homeport init` writes it, behind nginx, internal on PostgreSQL."""
    config = init_deployment(directory)
    proxy_port = free_port_run(1)
    port_base = free_port_run(8)

    def edit(data: Any) -> None:
        for name, hs in data["homeservers"].items():
            hs["server_name"] = f"{name}.homeport.test:{proxy_port}"
        internal = data["homeservers"]["internal"]
        internal["database"] = f"postgresql://postgres@127.0.0.1:5432/{database}"
        if workers:
            internal["workers"] = {**WORKERS, "port_base": port_base}
        data["admin"]["host"] = "admin.homeport.test"
        data["conference"]["host"] = "meet.homeport.test"
        data["proxy"] = {"address": PROXY, "port": proxy_port, "managed": True}
        data["redis"] = {"url": "redis://127.0.0.1:6379"}

    edit_yaml(config, edit)
    return config


class Client:
    """A user of one homeserver, through the proxy."""

    def __init__(self, base_url: str, context: ssl.SSLContext, user_id: str, token: str) -> None:
        self.user_id = user_id
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

    async def create_room(self) -> str:
        created = await self.http.post(
            "/_matrix/client/v3/createRoom", json={"preset": "public_chat"}
        )
        created.raise_for_status()
        return str(created.json()["room_id"])

    async def join(self, room: str, via: str | None = None) -> None:
        params = {"server_name": via} if via else {}
        joined = await self.http.post(f"/_matrix/client/v3/join/{quote(room)}", params=params)
        joined.raise_for_status()

    async def wait_for_room(self, room: str, timeout: float = 120) -> None:
        """Sync until the room is in this user's own sync: the join is complete.

        Eager syncs leave a partially joined room out; the proxy sends this user's
        syncs and sends to the same generic worker (affinity by token), so that
        worker has the complete state when the room shows up.
        """
        deadline = time.monotonic() + timeout
        while room not in (await self.sync(timeout_ms=1000)).get("rooms", {}).get("join", {}):
            if time.monotonic() > deadline:
                raise AssertionError(f"{room} not in {self.user_id}'s sync after {timeout} s")


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout} s")
        await asyncio.sleep(0.5)


@dataclass
class Round:
    delays: list[float]  # latency internal -> external, seconds
    rate: float  # completed /sync per second
    cpu: dict[str, float]  # CPU seconds by process type during /sync
    failed: dict[int, int]  # /sync answers that were errors, by status


@dataclass
class Side:
    """One deployment, its benchmark users and rooms, and its rounds."""

    label: str
    directory: Path
    database: str
    running: RunningDeployment
    context: ssl.SSLContext | None = None
    admins: dict[str, SynapseAdmin] = field(default_factory=dict)
    alice: Client | None = None  # internal, speaks in bob's room
    bob: Client | None = None  # external
    talk_room: str = ""
    sender: Client | None = None  # internal, ticks in the /sync room
    syncers: list[Client] = field(default_factory=list)
    sync_room: str = ""
    rounds: list[Round] = field(default_factory=list)

    async def registered(self, name: str, prefix: str, admin: bool = False) -> RegisteredUser:
        """A new user and its token, by shared-secret registration (no login, no login limit)."""
        hs = self.running.deployment.homeservers[name]
        assert self.context is not None
        async with SynapseClient(hs.local_url, self.context, tls_name=hs.tls_name) as client:
            return await SynapseAdmin(client).register(
                registration_shared_secret(self.running.layout.homeserver(name)),
                f"{prefix}{secrets.token_hex(4)}",
                secrets.token_urlsafe(12),
                admin,
            )

    async def user(self, name: str, prefix: str) -> Client:
        """A user of homeserver `name`, through the proxy."""
        assert self.context is not None
        user = await self.registered(name, prefix)
        base_url = self.running.deployment.homeservers[name].base_url
        return Client(base_url, self.context, user.user_id, user.access_token)

    async def admin(self, name: str) -> SynapseAdmin:
        """A server admin of homeserver `name`, on its main process."""
        assert self.context is not None
        user = await self.registered(name, "benchadmin", admin=True)
        hs = self.running.deployment.homeservers[name]
        client = SynapseClient(hs.local_url, self.context, tls_name=hs.tls_name)
        client.with_token(user.access_token)
        return SynapseAdmin(client)

    async def exempt(self, client: Client) -> Client:
        """No rate limits for this user of internal (Synapse's `override_ratelimit`)."""
        await self.admins["internal"].override_ratelimit(client.user_id)
        return client

    async def close(self) -> None:
        for admin in self.admins.values():
            await admin.client.aclose()
        for client in (self.alice, self.bob, self.sender, *self.syncers):
            if client is not None:
                await client.http.aclose()


async def answering(side: Side) -> None:
    """Every worker answers /health; both homeservers answer through the proxy."""
    deployment = side.running.deployment
    context = client_ssl_context(deployment)
    internal = deployment.homeservers["internal"]
    for spec in internal.workers.specs():

        async def healthy(spec: WorkerSpec = spec) -> bool:
            return await worker_health(internal, spec, context) is not None

        await until(healthy, f"{side.label}: worker {spec.name} answering", READY_TIMEOUT_S)
    async with httpx.AsyncClient(verify=context, timeout=10) as http:
        for name, hs in deployment.homeservers.items():

            async def proxied(url: str = f"{hs.base_url}/_matrix/client/versions") -> bool:
                try:
                    return (await http.get(url)).status_code == 200
                except httpx.HTTPError:
                    return False

            await until(proxied, f"{side.label}: {name} answering through nginx", READY_TIMEOUT_S)


async def background_updates_done(side: Side) -> None:
    """Synapse's background updates of the fresh databases ran (they would share the CPU)."""
    for name, admin in side.admins.items():

        async def done(admin: SynapseAdmin = admin) -> bool:
            return not await admin.pending_background_updates()

        await until(done, f"{side.label}: {name}'s background updates done", READY_TIMEOUT_S)


async def prepare(side: Side, clients: int) -> None:
    """Ready to measure: users, rooms, joins complete; the same for every round after."""
    side.context = client_ssl_context(side.running.deployment)
    await answering(side)
    for name in ("internal", "external"):
        side.admins[name] = await side.admin(name)
    await background_updates_done(side)

    side.alice = await side.exempt(await side.user("internal", "a"))
    side.bob = await side.user("external", "b")
    # On external: internal's starter policy keeps its own rooms off federation.
    side.talk_room = await side.bob.create_room()
    external = side.running.deployment.homeservers["external"].server_name
    await side.alice.join(side.talk_room, via=external)
    await side.alice.wait_for_room(side.talk_room)
    await side.bob.sync()

    side.sender = await side.exempt(await side.user("internal", "s"))
    side.sync_room = await side.sender.create_room()
    limit = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def syncer() -> Client:
        async with limit:
            client = await side.exempt(await side.user("internal", "c"))
            await client.join(side.sync_room)
            await client.sync()
            return client

    side.syncers = list(await asyncio.gather(*(syncer() for _ in range(clients))))


async def latency(side: Side, messages: int) -> list[float]:
    alice, bob = side.alice, side.bob
    assert alice is not None
    assert bob is not None
    await bob.sync()  # what arrived since the last round
    found: list[float] = []
    for i in range(messages):
        text = f"latency {i} {secrets.token_hex(4)}"
        await alice.send(side.talk_room, text)
        sent = time.monotonic()
        while True:
            body = await bob.sync(timeout_ms=5000)
            events = body.get("rooms", {}).get("join", {}).get(side.talk_room, {})
            timeline = events.get("timeline", {}).get("events", [])
            if any(e.get("content", {}).get("body") == text for e in timeline):
                found.append(time.monotonic() - sent)
                break
            assert time.monotonic() - sent < 60, f"message {i} never arrived"
    return found


def cpu_by_type(root: int, database: str) -> dict[str, float]:
    """CPU seconds of `up`'s descendants by process type, of PostgreSQL's connections to
    `database`, of this load generator, and the machine's idle seconds (all cores);
    under MACHINE, every core's time, whoever used it."""
    found: dict[str, float] = {MACHINE: sum(psutil.cpu_times())}
    own = psutil.Process().cpu_times()
    found["load generator (this script)"] = own.user + own.system
    found["idle (machine)"] = psutil.cpu_times().idle
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] != "postgres" or database not in " ".join(
            process.info["cmdline"] or []
        ):
            continue
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
    side: Side, seconds: float
) -> tuple[float, dict[str, float], dict[int, int]]:
    sender = side.sender
    assert sender is not None
    assert side.running.process is not None
    root = side.running.process.pid
    before = cpu_by_type(root, side.database)
    done = 0
    failed: dict[int, int] = {}
    stop = time.monotonic() + seconds

    async def loop(client: Client) -> None:
        nonlocal done
        while time.monotonic() < stop:
            try:
                await client.sync()
            except httpx.HTTPStatusError as error:  # counted and shown, not a completed /sync
                status = error.response.status_code
                failed[status] = failed.get(status, 0) + 1
            else:
                done += 1

    async def talk() -> None:
        while time.monotonic() < stop:
            await sender.send(side.sync_room, "tick")
            await asyncio.sleep(0.2)

    started = time.monotonic()
    await asyncio.gather(talk(), *(loop(c) for c in side.syncers))
    elapsed = time.monotonic() - started
    after = cpu_by_type(root, side.database)
    used = {kind: after.get(kind, 0.0) - before.get(kind, 0.0) for kind in after}
    return done / elapsed, used, failed


async def measure_round(side: Side, messages: int, seconds: float) -> Round:
    delays = await latency(side, messages)
    rate, cpu, failed = await sync_throughput(side, seconds)
    side.rounds.append(Round(delays, rate, cpu, failed))
    return side.rounds[-1]


def figures(measured: Round) -> str:
    return (
        f"latency internal->external p50 {1000 * statistics.median(measured.delays):.0f} ms, "
        f"p95 {1000 * percentile(measured.delays, 0.95):.0f} ms; "
        f"/sync {measured.rate:.0f} per second"
        + "".join(f"; {n} /sync answered {status}" for status, n in sorted(measured.failed.items()))
    )


def medians(side: Side) -> tuple[float, float, float]:
    """Medians over the rounds of (latency p50, latency p95, /sync per second)."""
    return (
        statistics.median(statistics.median(r.delays) for r in side.rounds),
        statistics.median(percentile(r.delays, 0.95) for r in side.rounds),
        statistics.median(r.rate for r in side.rounds),
    )


def cpu_shares(side: Side) -> str:
    """Shares of the machine's CPU time during the side's /sync phases (idle included)."""
    cpu: dict[str, float] = {}
    for measured in side.rounds:
        for kind, seconds in measured.cpu.items():
            cpu[kind] = cpu.get(kind, 0.0) + seconds
    total = cpu.pop(MACHINE, 0.0) or 1.0
    # The rest: the other deployment idling, and whatever else the machine runs.
    cpu["other processes"] = max(0.0, total - sum(cpu.values()))
    shares = ", ".join(
        f"{kind} {100 * seconds / total:.0f}%"
        for kind, seconds in sorted(cpu.items(), key=lambda item: -item[1])
        if seconds / total >= 0.005
    )
    return f"({total:.1f} s, every core): {shares}"


def listed(ratios: list[float]) -> str:
    return ", ".join(f"{ratio:.2f}" for ratio in ratios)


def report(split: Side, mono: Side) -> None:
    p50_w, p95_w, rate_w = medians(split)
    p50_m, p95_m, rate_m = medians(mono)
    print(f"\nmedians of {len(split.rounds)} rounds:")
    print(
        f"  {split.label}: latency p50 {1000 * p50_w:.0f} ms, p95 {1000 * p95_w:.0f} ms; "
        f"/sync {rate_w:.0f} per second"
    )
    print(
        f"  {mono.label}: latency p50 {1000 * p50_m:.0f} ms, p95 {1000 * p95_m:.0f} ms; "
        f"/sync {rate_m:.0f} per second"
    )
    pairs = list(zip(split.rounds, mono.rounds, strict=True))
    p95_ratios = [percentile(w.delays, 0.95) / percentile(m.delays, 0.95) for w, m in pairs]
    rate_ratios = [w.rate / m.rate for w, m in pairs]
    print(
        f"  latency p95 workers / monolith: {p95_w / p95_m:.2f} (target <= 1.3); "
        f"round by round {listed(p95_ratios)}, median {statistics.median(p95_ratios):.2f}"
    )
    print(
        f"  /sync throughput workers / monolith: {rate_w / rate_m:.2f}; "
        f"round by round {listed(rate_ratios)}, median {statistics.median(rate_ratios):.2f}"
    )
    print("machine CPU time during /sync, all rounds:")
    print(f"  {split.label} {cpu_shares(split)}")
    print(f"  {mono.label} {cpu_shares(mono)}")


def side(label: str, workers: bool) -> Side:
    directory = Path(tempfile.mkdtemp(prefix="homeport-bench-workers-"))
    database = new_database()
    config = configure(directory, database, workers)
    return Side(label, directory, database, RunningDeployment(config))


async def start(sides: list[Side]) -> None:
    await asyncio.gather(*(asyncio.to_thread(s.running.start, READY_TIMEOUT_S) for s in sides))


def stop(s: Side, keep_logs: bool) -> None:
    with contextlib.suppress(Exception):
        if s.running.process is not None:
            s.running.stop()
    s.running.kill_leftovers()
    drop_database(s.database)
    if keep_logs:
        print(f"{s.label}: logs kept in {s.running.deployment.data_dir}")
    else:
        shutil.rmtree(s.directory, ignore_errors=True)


def announce_settings(clients: int) -> None:
    message = SMALL_ORGANISATION_RATE_LIMITS["rc_message"]
    print(
        "settings: as `homeport init` writes them. The benchmark's users on internal are "
        "exempt from rate limits (Synapse's admin API override_ratelimit), not the server: "
        "the senders post 5 messages a second, and as fast as they arrive "
        f"(rc_message: {message['per_second']} a second, burst {message['burst_count']}), "
        f"and {clients} users join one room "
        "(Synapse's rc_joins_per_room: 1 a second, burst 10)."
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument(
        "--postgres-wait",
        type=float,
        default=300,
        help="seconds to wait for PostgreSQL to have the connections both deployments may open",
    )
    args = parser.parse_args()
    announce_settings(args.clients)
    layout = ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in WORKERS.items())
    processes = 1 + 1 + sum(WORKERS.values())  # the monolith's, and internal's with workers
    enough_connections(CONNECTIONS_PER_PROCESS * processes, args.postgres_wait)
    sides: list[Side] = []
    failed = True
    try:
        sides.append(side(f"workers ({layout})", True))
        sides.append(side("monolith (baseline)", False))
        began = time.monotonic()
        await start(sides)
        await asyncio.gather(*(prepare(s, args.clients) for s in sides))
        print(f"both deployments ready and set up in {time.monotonic() - began:.0f} s")
        split, mono = sides
        for number in range(1, args.rounds + 1):
            for s in (split, mono):
                measured = await measure_round(s, args.messages, args.seconds)
                print(f"round {number}, {s.label}: {figures(measured)}", flush=True)
            w, m = split.rounds[-1], mono.rounds[-1]
            print(
                f"round {number}, workers / monolith: latency p95 "
                f"{percentile(w.delays, 0.95) / percentile(m.delays, 0.95):.2f}, "
                f"/sync {w.rate / m.rate:.2f}",
                flush=True,
            )
        report(split, mono)
        # Keep the logs of a run in which Synapse answered a /sync with an error.
        failed = any(r.failed for s in sides for r in s.rounds)
    finally:
        for s in sides:
            await s.close()
            stop(s, keep_logs=failed)


if __name__ == "__main__":
    from bench.run_info import announced

    with announced():
        asyncio.run(main())
