#!/usr/bin/env python3
"""Audit ingest: what recording a room costs its senders, and how late each event is recorded.

Starts the deployment exactly as `homeport init` writes it (its rate limits,
the audit bot added to chosen rooms), with one exception that both sides
share: the senders are 10 users whose rate limit an admin lifted with
Synapse's own admin API (`override_ratelimit`, 0 messages/s, what Homeport's
service accounts get), because at the shipped 2 messages/s per user both
sides would send at exactly the limit and their ratio would be 1.000 by
construction. The override covers room creation too: Synapse's ratelimiter
lets every limit pass, rc_room_creation included, for a user whose override
says 0 messages/s (`Ratelimiter.can_do_action`), and each sender creates only
its own 4 rooms. (At 852c04d one ordinary user created all 20 rooms: after
Synapse's burst of 10, rc_room_creation allows one a minute, so the bench sat
over 7 minutes in 429s before measuring anything.)

Each sender has 2 rooms the audit bot records (audited) and 2 it is not in
(unaudited). The same work on both sides: every sender sends MESSAGES
messages into its rooms of that side, all senders at once. The unaudited
rounds are Synapse alone, the baseline; audited and unaudited rounds take
turns in the same run (A B, B A, ...: bench/interleaved.py says why), ROUNDS
of each, after a few untimed messages of each kind warm Synapse up.

For each round the send rate (first send to last acknowledgement); for the
audited rounds also the ingest rate (first send until the last message was in
the store) and the lag from each message's origin_server_ts until the bench
first saw it in the store (polled every 50 ms, so an upper bound of the
commit lag; polled in the unaudited rounds too, so the observer weighs on
both sides alike). Printed: the medians of each side, their ratio pair by
pair (rounds minutes apart, on a busy machine, carry different loads; the two
rounds of a pair are next to each other) and of the medians (what recording
costs Synapse's senders; target >= 0.95), the lag p50, p95, max
(target p95 < 1 s, max < 5 s), and whether the bot recorded every audited
message exactly once and none of the unaudited ones, with the number of 429
answers the senders met (0: nothing throttled them).

Then one more audited round while four exporters (what `homeport audit
export` runs, over and over, each a process of its own) and a status poller
(what `homeport status` runs) read the store: whether the bot keeps up and
its lag meanwhile. It has no Synapse-alone twin (the readers are Homeport's),
so its send rate is set against the unaudited median only as a hint: the
readers take CPU from Synapse on a small machine. Also how often "database is
locked" shows in any log (target: never).

Then the time the store takes for one 100-event transaction (the most
Synapse sends at once: the write lock is held that long), the export rate of
100,000 recorded events (`store.stream` + the JSON lines writer, what
`homeport audit export` runs) against a plain SQL scan of the same rows in
the same run, and the peak memory of exporting 10,000 and 100,000 events
(flat: the export pages by `seq`).

    .venv/bin/python bench/audit_ingest.py --messages 50 --rounds 4
    .venv/bin/python bench/audit_ingest.py --store postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.interleaved import percentile, spread, turns  # noqa: E402
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
ROOMS_EACH = 2  # audited rooms per sender, and as many unaudited
WARM_UP = 4  # messages per sender into each kind of room before anything is timed
AUDITED, UNAUDITED = "audited", "unaudited"
STRAGGLERS_S = 120  # how long the bench waits for the bot after the last acknowledgement


@dataclass
class Throttled:
    """The 429 answers the senders met (0: nothing throttled them)."""

    answers: int = 0


async def patiently(call: Callable[[], Awaitable[T]], throttled: Throttled) -> T:
    """What a client does on 429: wait, then try again (counted: it should not happen)."""
    while True:
        try:
            return await call()
        except SynapseApiError as error:
            if error.status != 429:
                raise
            throttled.answers += 1
            await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Setup:
    clients: list[SynapseClient]
    rooms: dict[str, list[list[str]]]  # side -> each sender's rooms of that side


async def setup(running: RunningDeployment) -> Setup:
    context = client_ssl_context(running.deployment)
    _, root = await client_for(running, "internal", context, admin=True)
    senders = [await client_for(running, "internal", context) for _ in range(SENDERS)]
    async with SynapseAdmin(root) as admin:
        for user_id, _ in senders:
            await admin.override_ratelimit(user_id)  # before the rooms: see the docstring
    clients = [client for _, client in senders]
    rooms: dict[str, list[list[str]]] = {AUDITED: [], UNAUDITED: []}
    for client in clients:
        for side in (AUDITED, UNAUDITED):
            rooms[side].append(
                [await create_room(client, preset="private_chat") for _ in range(ROOMS_EACH)]
            )
    for room in (r for mine in rooms[AUDITED] for r in mine):
        homeport("audit", "add", "-c", str(running.config_path), "internal", room)
    return Setup(clients, rooms)


@dataclass
class Round:
    """One side's round: what was sent, how fast, and (audited) how soon it was stored."""

    side: str
    event_ids: list[str]
    send_s: float
    ingest_s: float | None = None  # first send until the last message was seen stored
    lags: list[float] = field(default_factory=list)

    @property
    def send_rate(self) -> float:
        return len(self.event_ids) / self.send_s

    @property
    def ingest_rate(self) -> float:
        assert self.ingest_s is not None
        return len(self.event_ids) / self.ingest_s


async def send_round(
    engine: Engine,
    side: str,
    clients: list[SynapseClient],
    rooms: list[list[str]],
    per_sender: int,
    tag: str,
    throttled: Throttled,
) -> Round:
    """Every sender sends `per_sender` messages into its rooms, all at once, while the
    bench polls the store for when each was first seen there. It polls in unaudited
    rounds too (finding nothing), so that the observer costs both sides alike; an
    audited round ends when everything sent is stored, so that the next round does
    not pay for the bot's tail."""
    sent: list[str] = []
    seen: dict[str, float] = {}
    done = asyncio.Event()

    def finished() -> bool:
        return done.is_set() and (side == UNAUDITED or seen.keys() >= set(sent))

    async def watch() -> None:
        after = store.last_seq(engine, "internal")

        def page(after: int) -> list[store.Recorded]:
            return list(store.stream(engine, "internal", store.Filters(), after))

        while not finished():
            found = await asyncio.to_thread(page, after)
            now = time.time()
            for event in found:
                seen.setdefault(event.event_id, now)
                after = max(after, event.seq)
            await asyncio.sleep(0.05)

    async def sender(index: int) -> None:
        client, mine = clients[index], rooms[index]
        for n in range(per_sender):
            room, body = mine[n % len(mine)], f"{tag} {index} {n}"

            async def one(room: str = room, body: str = body) -> str:
                return await text(client, room, body)

            sent.append(await patiently(one, throttled))

    watcher = asyncio.create_task(watch())
    started = time.time()
    await asyncio.gather(*(sender(i) for i in range(len(clients))))
    acknowledged = time.time()
    done.set()
    result = Round(side, sent, acknowledged - started)
    # What never arrives shows in the exactly-once count.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(watcher, timeout=STRAGGLERS_S)
    if side == UNAUDITED:
        return result
    stored = [seen[e] for e in sent if e in seen]
    result.ingest_s = (max(stored) if stored else time.time()) - started
    mine = set(sent)
    for event in store.stream(engine, "internal", store.Filters()):
        if event.event_id in seen and event.event_id in mine:
            result.lags.append(seen[event.event_id] - event.origin_server_ts / 1000)
    return result


@dataclass(frozen=True)
class Once:
    """Did the bot record every audited message exactly once, and nothing else?"""

    audited: int
    missing: int
    twice: int  # an event ID or a message text stored more than once
    unaudited: int
    stray: int  # unaudited messages in the store


def recorded_once(engine: Engine, audited: list[str], unaudited: list[str]) -> Once:
    query = select(audit_events.c.event_id, audit_events.c.body).where(
        audit_events.c.homeserver == "internal"
    )
    with engine.connect() as connection:
        rows = [(str(r.event_id), r.body) for r in connection.execute(query)]
    ids = Counter(event_id for event_id, _ in rows)
    wanted = set(audited)
    bodies = Counter(body for event_id, body in rows if event_id in wanted)
    return Once(
        audited=len(audited),
        missing=sum(1 for e in audited if e not in ids),
        twice=sum(1 for e in audited if ids[e] > 1)
        + sum(count - 1 for count in bodies.values() if count > 1),
        unaudited=len(unaudited),
        stray=sum(1 for e in unaudited if e in ids),
    )


@dataclass
class Ingest:
    setup_s: float  # users, rooms, the bot added
    rounds: list[tuple[int, Round]]
    once: Once
    throttled: int
    read: Round
    readers: dict[str, float]


async def ingest(running: RunningDeployment, per_sender: int, pairs: int, folder: Path) -> Ingest:
    started = time.monotonic()
    prepared = await setup(running)
    setup_s = time.monotonic() - started
    engine = open_store(running.deployment)
    throttled = Throttled()
    rounds: list[tuple[int, Round]] = []
    try:
        # Untimed: Synapse's caches warm, every room has had a message through.
        clients = prepared.clients
        for side in (UNAUDITED, AUDITED):
            rooms = prepared.rooms[side]
            await send_round(engine, side, clients, rooms, WARM_UP, "warm-up", throttled)
        for number, side in turns(pairs, AUDITED, UNAUDITED):
            rooms, tag = prepared.rooms[side], f"{side} {number}"
            result = await send_round(engine, side, clients, rooms, per_sender, tag, throttled)
            rounds.append((number, result))
            print(f"  round {number} {round_line(result)}", flush=True)
        with Readers(running.config_path, "internal", "", folder / "readers") as reading:
            rooms = prepared.rooms[AUDITED]
            read = await send_round(engine, AUDITED, clients, rooms, per_sender, "read", throttled)
            report = reading.stop()
        once = recorded_once(
            engine,
            [e for _, r in rounds if r.side == AUDITED for e in r.event_ids] + read.event_ids,
            [e for _, r in rounds if r.side == UNAUDITED for e in r.event_ids],
        )
    finally:
        engine.dispose()
        for client in prepared.clients:
            await client.aclose()
    return Ingest(
        setup_s,
        rounds,
        once,
        throttled.answers,
        read,
        {
            "exports": report.exports,
            "polls": report.polls,
            "errors": len(report.errors),
            "cores": report.cpu_s / report.wall_s,
        },
    )


def round_line(result: Round) -> str:
    line = f"{result.side:<9}  send {result.send_rate:6.1f} msg/s"
    if result.ingest_s is not None:
        line += (
            f", ingest {result.ingest_rate:6.1f} msg/s, "
            f"lag p95 {percentile(result.lags or [0.0], 0.95) * 1000:4.0f} ms"
        )
    return line


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


def print_ingest(result: Ingest, per_sender: int, pairs: int, store_kind: str) -> None:
    rates: dict[str, list[float]] = {AUDITED: [], UNAUDITED: []}
    by_pair: dict[int, dict[str, float]] = {}
    for number, row in result.rounds:
        rates[row.side].append(row.send_rate)
        by_pair.setdefault(number, {})[row.side] = row.send_rate
    audited = [row for _, row in result.rounds if row.side == AUDITED]
    bare = statistics.median(rates[UNAUDITED])
    ratio = statistics.median(rates[AUDITED]) / bare
    pair_ratios = [p[AUDITED] / p[UNAUDITED] for p in by_pair.values()]
    print(
        f"{SENDERS} senders (rate limit lifted), {SENDERS * ROOMS_EACH} audited and "
        f"{SENDERS * ROOMS_EACH} unaudited rooms, {per_sender * SENDERS} messages per round, "
        f"{pairs} rounds each side, interleaved; store on {store_kind}"
    )
    print(f"  unaudited (Synapse alone)  send {spread(rates[UNAUDITED])} msg/s")
    print(
        f"  audited                    send {spread(rates[AUDITED])} msg/s, ingest "
        f"{spread([r.ingest_rate for r in audited])} msg/s (keeps up: "
        f"{spread([r.ingest_rate / r.send_rate for r in audited], 2)})"
    )
    print(
        f"  audited / unaudited, pair by pair: {spread(pair_ratios, 2)}; "
        f"of the two medians: {ratio:.2f} (target >= 0.95)"
    )
    lags = [lag for row in audited for lag in row.lags]
    print(
        f"  lag send -> in store p50 {percentile(lags, 0.5) * 1000:5.0f} ms, "
        f"p95 {percentile(lags, 0.95) * 1000:5.0f} ms, max {max(lags) * 1000:5.0f} ms "
        "(target p95 < 1000 ms, max < 5000 ms)"
    )
    once = result.once
    exact = once.missing == once.twice == once.stray == 0
    print(
        f"  recorded exactly once: {'yes' if exact else 'NO'}: "
        f"{once.audited - once.missing} of {once.audited} audited messages stored, "
        f"{once.twice} twice; {once.stray} of {once.unaudited} unaudited stored; "
        f"429 answers to the senders: {result.throttled}"
    )
    read, readers = result.read, result.readers
    print(
        f"  audited + readers          send {read.send_rate:6.1f} msg/s, ingest "
        f"{read.ingest_rate:6.1f} msg/s (keeps up: {read.ingest_rate / read.send_rate:.2f}); "
        f"{read.send_rate / bare:.2f} of the unaudited median (no Synapse-alone twin)"
    )
    print(
        f"  {'':<25}  lag p50 {percentile(read.lags, 0.5) * 1000:5.0f} ms, "
        f"p95 {percentile(read.lags, 0.95) * 1000:5.0f} ms, max {max(read.lags) * 1000:5.0f} ms"
    )
    print(
        f"  readers meanwhile: {readers['exports']:.0f} exports by 4 exporters, "
        f"{readers['polls']:.0f} status polls, {readers['errors']:.0f} errors, using "
        f"{readers['cores']:.2f} of the machine's {os.cpu_count()} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50, help="per sender and round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each side")
    parser.add_argument("--store", help="a postgresql:// URL for Homeport's store (default SQLite)")
    parser.add_argument("--export-events", type=int, default=100_000)
    parser.add_argument("--export-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(Path(args.export_child[0]), int(args.export_child[1]))
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        config = init_deployment(Path(folder))  # the shipped settings
        if args.store:
            edit_yaml(config, lambda data: data.update(store={"database": args.store}))
        running = RunningDeployment(config)
        running.start()
        try:
            result = asyncio.run(ingest(running, args.messages, args.rounds, Path(folder)))
        finally:
            running.stop()
            running.kill_leftovers()
        locked = locked_lines(Path(folder))
    print_ingest(result, args.messages, args.rounds, "PostgreSQL" if args.store else "SQLite")
    print(f'  "database is locked" in the logs: {locked}')
    elapsed = time.monotonic() - started
    print(
        f"  ({elapsed:.0f} s from `homeport up` to here, {result.setup_s:.0f} s of it setting up "
        f"{SENDERS + 1} users, {2 * SENDERS * ROOMS_EACH} rooms and the bot in "
        f"{SENDERS * ROOMS_EACH})"
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

    if "--export-child" in sys.argv:  # a process of this bench's own: it answers in JSON
        main()
    else:
        with announced():
            main()
