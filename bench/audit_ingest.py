#!/usr/bin/env python3
"""Audit ingest: does the bot keep up with Synapse, and how late is each event recorded?

Starts the starter deployment exactly as `homeport init` writes it (Homeport's
own rate limits: the senders are ordinary users, 2 messages/s each after a
burst of 30), creates 20 rooms on internal and has the audit bot record them,
then 10 senders send concurrently, each to its share of the rooms.

Reported, in the same run:

  Synapse's send rate   messages Synapse accepted per second (first send to
                        last acknowledgement): the baseline
  audit ingest rate     messages recorded per second (first send until the
                        last was committed to the store); ratio to the above
                        (target >= 0.95)
  lag                   from each message's origin_server_ts until the bench
                        first saw it in the store (polled every 50 ms, so an
                        upper bound of the commit lag): p50, p95 (target p95 < 1 s)

Then the export rate of 100,000 recorded events (`store.stream` + the JSON
lines writer, what `homeport audit export` runs) against a plain SQL scan of
the same rows in the same run, and the peak memory of exporting 10,000 and
100,000 events (flat: the export pages by `seq`).

    .venv/bin/python bench/audit_ingest.py --messages 100
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
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.audit import store  # noqa: E402
from homeport.audit.export import write_jsonl  # noqa: E402
from homeport.audit.records import record_of  # noqa: E402
from homeport.config.loader import load_deployment  # noqa: E402
from homeport.store.database import create_store_engine, open_store, store_url  # noqa: E402
from homeport.store.migrate import migrate  # noqa: E402
from homeport.store.schema import audit_events  # noqa: E402
from homeport.synapse.api import SynapseApiError  # noqa: E402
from homeport.trust import client_ssl_context  # noqa: E402
from tests.audit_helpers import client_for, create_room, text  # noqa: E402
from tests.harness import RunningDeployment, homeport, init_deployment  # noqa: E402

T = TypeVar("T")
SENDERS = 10
ROOMS = 20


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


async def ingest(running: RunningDeployment, per_sender: int) -> dict[str, float]:
    deployment = running.deployment
    context = client_ssl_context(deployment)
    senders = [await client_for(running, "internal", context) for _ in range(SENDERS)]
    clients = [client for _, client in senders]
    rooms = [
        await patiently(lambda: create_room(clients[0], preset="public_chat")) for _ in range(ROOMS)
    ]
    for room in rooms:
        homeport("audit", "add", "-c", str(running.config_path), "internal", room)
    for index, client in enumerate(clients[1:], start=1):
        for room in rooms[2 * index : 2 * index + 2]:
            await patiently(
                lambda c=client, r=room: c.request(
                    "POST", f"/_matrix/client/v3/join/{quote(r)}", json={}
                )
            )

    engine = open_store(deployment)
    sent: dict[str, int] = {}
    seen: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
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
        client = clients[index]
        mine = rooms[2 * index : 2 * index + 2]  # 10 senders x 2 = the 20 rooms
        for n in range(per_sender):
            event_id = await patiently(lambda n=n: text(client, mine[n % 2], f"bench {index} {n}"))
            sent[event_id] = 0

    watcher = asyncio.create_task(watch())
    started = time.time()
    await asyncio.gather(*(sender(i) for i in range(SENDERS)))
    acknowledged = time.time()
    done.set()
    await asyncio.wait_for(watcher, timeout=300)
    recorded = max(seen[e] for e in sent)
    for client in clients:
        await client.aclose()

    lags = []
    for event in store.stream(engine, "internal", store.Filters()):
        if event.event_id in sent:
            lags.append(seen[event.event_id] - event.origin_server_ts / 1000)
    engine.dispose()
    total = len(sent)
    send_rate = total / (acknowledged - started)
    ingest_rate = total / (recorded - started)
    return {
        "messages": total,
        "send_rate": send_rate,
        "ingest_rate": ingest_rate,
        "ratio": ingest_rate / send_rate,
        "lag_p50": percentile(lags, 0.5),
        "lag_p95": percentile(lags, 0.95),
    }


def seed(path: Path, count: int) -> None:
    config = path / "homeport.yaml"
    config.write_text("homeservers:\n  internal: {server_name: 'localhost:8448', port: 8448}\n")
    deployment = load_deployment(config)[0]
    engine = create_store_engine(store_url(deployment))
    migrate(engine)
    batch = []
    for n in range(count):
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
        batch.append(record)
        if len(batch) == 5000:
            store.record(engine, "internal", batch)
            batch = []
    if batch:
        store.record(engine, "internal", batch)
    engine.dispose()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100, help="per sender")
    parser.add_argument("--export-events", type=int, default=100_000)
    parser.add_argument("--export-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(Path(args.export_child[0]), int(args.export_child[1]))
        return
    with tempfile.TemporaryDirectory() as folder:
        config = init_deployment(Path(folder), relax=False)  # Homeport's own limits
        running = RunningDeployment(config)
        running.start()
        try:
            result = asyncio.run(ingest(running, args.messages))
        finally:
            running.stop()
            running.kill_leftovers()
    print(
        f"{SENDERS} senders, {ROOMS} audited rooms, {result['messages']:.0f} messages "
        "(shipped rate limits)"
    )
    print(f"  Synapse's send rate   {result['send_rate']:7.1f} msg/s   (baseline)")
    print(
        f"  audit ingest rate     {result['ingest_rate']:7.1f} msg/s   "
        f"ratio {result['ratio']:.3f} (target >= 0.95)"
    )
    print(
        f"  lag send -> recorded  p50 {result['lag_p50'] * 1000:6.0f} ms   "
        f"p95 {result['lag_p95'] * 1000:6.0f} ms (target p95 < 1000 ms)"
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
    main()
