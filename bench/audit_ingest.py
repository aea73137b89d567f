#!/usr/bin/env python3
"""Audit ingest: does the bot keep up with Synapse, and how late is each event recorded?

Starts the starter deployment exactly as `homeport init` writes it, but for
the senders: 10 users whose rate limit an admin lifted (Synapse's admin API),
so that Synapse, not its limit of 2 messages/s, sets the pace. Each sender
has 2 rooms the audit bot records and 2 it is not in. Three phases, in the
same run, each with every sender sending MESSAGES messages at once:

  bare        into the rooms without the bot: Synapse's own send rate, the
              baseline (no application service traffic at all); run first
              and again last, the baseline is the mean of the two
  recorded    into the recorded rooms
  read        into the recorded rooms while four exporters (what `homeport
              audit export` runs, over and over, each a process of its own)
              and a status poller (what `homeport status` runs) read the store

A few untimed messages first warm Synapse up.

For each: the send rate (first send to last acknowledgement), and for the
recorded phases the ingest rate (first send until the last message was in
the store), its ratio to the same phase's send rate (does the bot keep up
with what Synapse sends) and to the bare send rate (what recording costs
Synapse's senders; target >= 0.95), and the lag from each message's
origin_server_ts until the bench first saw it in the store (polled every
50 ms, so an upper bound of the commit lag): p50, p95, max (target p95 < 1 s,
max < 5 s). The readers' own share of the CPU is printed too, and how often
"database is locked" shows in any log (target: never).

Then the time the store takes for one 100-event transaction (the most
Synapse sends at once: the write lock is held that long), the export rate of
100,000 recorded events (`store.stream` + the JSON lines writer, what
`homeport audit export` runs) against a plain SQL scan of the same rows in
the same run, and the peak memory of exporting 10,000 and 100,000 events
(flat: the export pages by `seq`).

    .venv/bin/python bench/audit_ingest.py --messages 100
    .venv/bin/python bench/audit_ingest.py --store postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.audit import store  # noqa: E402
from homeport.audit.export import write_jsonl  # noqa: E402
from homeport.audit.records import EventRecord, record_of  # noqa: E402
from homeport.config.loader import load_deployment  # noqa: E402
from homeport.store.database import create_store_engine, open_store, store_url  # noqa: E402
from homeport.store.migrate import migrate  # noqa: E402
from homeport.store.schema import audit_events  # noqa: E402
from homeport.synapse.admin_api import SynapseAdmin  # noqa: E402
from homeport.synapse.api import SynapseApiError, SynapseClient  # noqa: E402
from homeport.trust import client_ssl_context  # noqa: E402
from tests.audit_helpers import client_for, create_room, text  # noqa: E402
from tests.audit_readers import Readers  # noqa: E402
from tests.harness import RunningDeployment, edit_yaml, homeport, init_deployment  # noqa: E402

T = TypeVar("T")
SENDERS = 10
ROOMS_EACH = 2  # recorded rooms per sender, and as many without the bot
WARM_UP = 4  # messages per sender into each kind of room before anything is timed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def patiently(call: Callable[[], Awaitable[T]]) -> T:
    """What a client does on 429: wait as long as Synapse asks, then try again."""
    while True:
        try:
            return await call()
        except SynapseApiError as error:
            if error.status != 429:
                raise
            await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Setup:
    clients: list[SynapseClient]
    recorded: list[list[str]]  # each sender's recorded rooms
    bare: list[list[str]]  # each sender's rooms without the bot


async def setup(running: RunningDeployment) -> Setup:
    context = client_ssl_context(running.deployment)
    _, root = await client_for(running, "internal", context, admin=True)
    senders = [await client_for(running, "internal", context) for _ in range(SENDERS)]
    async with SynapseAdmin(root) as admin:
        for user_id, _ in senders:
            await admin.override_ratelimit(user_id)
    clients = [client for _, client in senders]
    recorded: list[list[str]] = []
    bare: list[list[str]] = []
    for client in clients:
        for rooms in (recorded, bare):
            rooms.append(
                [await create_room(client, preset="private_chat") for _ in range(ROOMS_EACH)]
            )
    for room in (r for rooms in recorded for r in rooms):
        homeport("audit", "add", "-c", str(running.config_path), "internal", room)
    return Setup(clients, recorded, bare)


async def send_phase(
    engine: Engine | None,
    clients: list[SynapseClient],
    rooms: list[list[str]],
    per_sender: int,
    tag: str,
) -> dict[str, float]:
    """Every sender sends `per_sender` messages into its rooms, all at once; with
    `engine`, also when each message was first seen in the store."""
    sent: dict[str, int] = {}
    seen: dict[str, float] = {}
    done = asyncio.Event()

    async def watch(engine: Engine) -> None:
        after = store.last_seq(engine, "internal")
        while not (done.is_set() and set(sent) <= set(seen)):
            page = await asyncio.to_thread(
                lambda a=after: list(store.stream(engine, "internal", store.Filters(), a))
            )
            now = time.time()
            for event in page:
                seen.setdefault(event.event_id, now)
                after = max(after, event.seq)
            await asyncio.sleep(0.05)

    async def sender(index: int) -> None:
        mine = rooms[index]
        for n in range(per_sender):
            event_id = await patiently(
                lambda n=n: text(clients[index], mine[n % len(mine)], f"{tag} {index} {n}")
            )
            sent[event_id] = 0

    watcher = None if engine is None else asyncio.create_task(watch(engine))
    started = time.time()
    await asyncio.gather(*(sender(i) for i in range(len(clients))))
    acknowledged = time.time()
    done.set()
    total = len(sent)
    result = {"messages": total, "send_rate": total / (acknowledged - started)}
    if watcher is None or engine is None:
        return result
    await asyncio.wait_for(watcher, timeout=300)
    lags, delivered = [], []
    for event in store.stream(engine, "internal", store.Filters()):
        if event.event_id in sent:
            lags.append(seen[event.event_id] - event.origin_server_ts / 1000)
            delivered.append((event.received_ts - event.origin_server_ts) / 1000)
    recorded = max(seen[e] for e in sent)
    return {
        **result,
        "ingest_rate": total / (recorded - started),
        "lag_p50": percentile(lags, 0.5),
        "lag_p95": percentile(lags, 0.95),
        "lag_max": max(lags),
        "delivered_max": max(delivered),
    }


async def ingest(running: RunningDeployment, per_sender: int, folder: Path) -> dict[str, Any]:
    prepared = await setup(running)
    engine = open_store(running.deployment)
    results: dict[str, Any] = {}
    try:
        # Untimed: Synapse's caches warm, every room has had a message through.
        await send_phase(None, prepared.clients, prepared.bare, WARM_UP, "warm-up")
        await send_phase(engine, prepared.clients, prepared.recorded, WARM_UP, "warm-up")
        for phase, rooms in (
            ("bare", prepared.bare),
            ("recorded", prepared.recorded),
            ("read", prepared.recorded),
            ("bare again", prepared.bare),
        ):
            readers: AbstractContextManager[Any] = nullcontext()
            if phase == "read":
                readers = Readers(running.config_path, "internal", "", folder / "readers")
            with readers as reading:
                watched = None if phase.startswith("bare") else engine
                results[phase] = await send_phase(
                    watched, prepared.clients, rooms, per_sender, phase
                )
                if reading is not None:
                    report = reading.stop()
                    results["readers"] = {
                        "exports": report.exports,
                        "polls": report.polls,
                        "errors": len(report.errors),
                        "cores": report.cpu_s / report.wall_s,
                    }
    finally:
        engine.dispose()
        for client in prepared.clients:
            await client.aclose()
    return results


def bench_record(n: int) -> EventRecord:
    event = {
        "event_id": f"$bench{n}",
        "room_id": f"!room{n % 20}:localhost",
        "sender": f"@user{n % 10}:localhost",
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": f"message {n} " + "x" * 80},
        "origin_server_ts": 1_800_000_000_000 + n,
    }
    record = record_of(event, 1_800_000_000_000 + n)
    assert record is not None
    return record


def seeded_store(path: Path) -> Engine:
    """A fresh SQLite store in `path`, migrated."""
    config = path / "homeport.yaml"
    config.write_text("homeservers:\n  internal: {server_name: 'localhost:8448', port: 8448}\n")
    deployment = load_deployment(config)[0]
    engine = create_store_engine(store_url(deployment))
    migrate(engine)
    return engine


def seed(path: Path, count: int) -> None:
    engine = seeded_store(path)
    for start in range(0, count, 5000):
        store.record(engine, "internal", [bench_record(n) for n in range(start, start + 5000)])
    engine.dispose()


def transaction_times(transactions: int = 50, size: int = 100) -> list[float]:
    """Seconds to store each of `transactions` Synapse transactions of `size` events (the
    most Synapse puts in one), into a fresh SQLite store: the write lock's hold time."""
    with tempfile.TemporaryDirectory() as folder:
        engine = seeded_store(Path(folder))
        times = []
        for t in range(transactions):
            batch = [bench_record(t * size + n) for n in range(size)]
            started = time.perf_counter()
            store.record(engine, "internal", batch)
            times.append(time.perf_counter() - started)
        engine.dispose()
    return times


def export_child(path: Path, limit: int) -> None:
    """Run in a process of its own, so that its peak memory is its own."""
    deployment = load_deployment(path / "homeport.yaml")[0]
    engine = open_store(deployment)
    events = store.stream(engine, "internal", store.Filters(until_ms=1_800_000_000_000 + limit))
    started = time.perf_counter()
    with open(os.devnull, "w") as out:
        count = write_jsonl(events, out)
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    with engine.connect() as connection:
        scanned = sum(
            1
            for _ in connection.execution_options(stream_results=True, yield_per=1000).execute(
                select(audit_events).where(
                    audit_events.c.origin_server_ts < 1_800_000_000_000 + limit
                )
            )
        )
    scan_s = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "count": count,
                "scanned": scanned,
                "export_s": export_s,
                "scan_s": scan_s,
                "peak_mib": peak_kib / 1024,
            }
        )
    )


def export_rates(count: int) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder)
        seed(path, count)
        results = []
        for limit in (count // 10, count):
            out = subprocess.run(
                [sys.executable, __file__, "--export-child", str(path), str(limit)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results.append(json.loads(out))
        return results


def locked_lines(directory: Path) -> int:
    """How often "database is locked" shows in the deployment's logs."""
    return sum(
        path.read_text(errors="replace").count("database is locked")
        for path in directory.rglob("*")
        if path.is_file() and (path.suffix in (".log", ".out", ".json") or "log" in path.name)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100, help="per sender and phase")
    parser.add_argument("--store", help="a postgresql:// URL for Homeport's store (default SQLite)")
    parser.add_argument("--export-events", type=int, default=100_000)
    parser.add_argument("--export-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(Path(args.export_child[0]), int(args.export_child[1]))
        return
    with tempfile.TemporaryDirectory() as folder:
        config = init_deployment(Path(folder))  # Homeport's own limits
        if args.store:
            edit_yaml(config, lambda data: data.update(store={"database": args.store}))
        running = RunningDeployment(config)
        running.start()
        try:
            result = asyncio.run(ingest(running, args.messages, Path(folder)))
        finally:
            running.stop()
            running.kill_leftovers()
        locked = locked_lines(Path(folder))
    first, last = result["bare"], result["bare again"]
    baseline = (first["send_rate"] + last["send_rate"]) / 2
    print(
        f"{SENDERS} senders (rate limit lifted), {SENDERS * ROOMS_EACH} recorded rooms, "
        f"{first['messages']:.0f} messages per phase, store on "
        f"{'PostgreSQL' if args.store else 'SQLite'}"
    )
    print(
        f"  bare (no bot)         send {baseline:6.1f} msg/s   (baseline: first "
        f"{first['send_rate']:.1f}, last {last['send_rate']:.1f})"
    )
    for phase, label in (("recorded", "recorded"), ("read", "recorded + readers")):
        row = result[phase]
        kept_up = row["ingest_rate"] / row["send_rate"]
        print(
            f"  {label:<20}  send {row['send_rate']:6.1f} msg/s, ingest "
            f"{row['ingest_rate']:6.1f} msg/s (keeps up: {kept_up:.2f}), "
            f"ratio to baseline {row['ingest_rate'] / baseline:.2f} (target >= 0.95)"
        )
        print(
            f"  {'':<20}  lag send -> in store p50 {row['lag_p50'] * 1000:5.0f} ms, "
            f"p95 {row['lag_p95'] * 1000:5.0f} ms, max {row['lag_max'] * 1000:5.0f} ms "
            "(target p95 < 1000 ms, max < 5000 ms)"
        )
    readers = result["readers"]
    print(
        f"  readers meanwhile: {readers['exports']} exports by 4 exporters, "
        f"{readers['polls']} status polls, {readers['errors']} errors, using "
        f"{readers['cores']:.2f} of the machine's {os.cpu_count()} cores; "
        f'"database is locked" in the logs: {locked}'
    )
    times = transaction_times()
    print(
        f"  storing one 100-event transaction (SQLite, idle store): p50 "
        f"{percentile(times, 0.5) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
    )
    small, large = export_rates(args.export_events)
    for row in (small, large):
        export_rate = row["count"] / row["export_s"]
        scan_rate = row["scanned"] / row["scan_s"]
        print(
            f"  export {row['count']:>7.0f} events  {export_rate:9.0f} events/s; plain SQL "
            f"scan {scan_rate:9.0f} rows/s (ratio {export_rate / scan_rate:.2f}); "
            f"peak memory {row['peak_mib']:.0f} MiB"
        )
    print(
        f"  peak memory {large['count']:.0f} / {small['count']:.0f} events: "
        f"{large['peak_mib'] / small['peak_mib']:.2f} (flat is 1)"
    )


if __name__ == "__main__":
    from bench.run_info import announced

    with announced():
        main()
