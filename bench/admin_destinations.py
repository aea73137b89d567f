#!/usr/bin/env python3
"""Render time of the admin website's Federation tab with 1,000 and 10,000 destinations.

Starts the starter deployment, stops internal, seeds destinations into its
SQLite database through Synapse's own tables (`destinations`,
`destination_rooms`, as Synapse records them: a mix of working, failing and
never-worked servers, each in 1-3 real rooms), starts it again, logs in to
the website as a server admin and times, over loopback, N requests of:

  first    /federation
  middle   /federation?from=<half>
  sorted   /federation?order_by=retry_last_ts&dir=b
  searched /federation?q=<a name fragment>

  next attempt      /federation?order_by=next_attempt
  undelivered since /federation?order_by=undelivered_since

Each page is one request to the Homeport module: Synapse's page of 25
destinations, the room count of each, and the delivery state of every
destination that lacks events (30 % of them here: a large outage, the
worst case). Baseline in the same run, round by round: Synapse's admin API
answering the same list query directly (one request, no website; for the
module's own orders, Synapse's nearest order). Target: the website's p95 at most 3x Synapse's, and
flat as the count grows (10,000 / 1,000 ratio near 1).

    .venv/bin/python bench/admin_destinations.py --requests 30
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.synapse.api import SynapseClient  # noqa: E402
from homeport.trust import client_ssl_context  # noqa: E402
from tests.harness import (  # noqa: E402
    RunningDeployment,
    access_token,
    homeport,
    init_deployment,
)

# Each page of the website, and the same list query asked of Synapse directly.
QUERIES = {
    "first": ("/federation", {}),
    "middle": ("/federation?from={half}", {"from": "{half}"}),
    "sorted": (
        "/federation?order_by=retry_last_ts&dir=b",
        {"order_by": "retry_last_ts", "dir": "b"},
    ),
    "searched": ("/federation?q=bench-004", {"destination": "bench-004"}),
    # Orders Synapse's admin API lacks (the module's own query); the baseline
    # is Synapse's nearest order.
    "next attempt": (
        "/federation?order_by=next_attempt",
        {"order_by": "retry_interval", "dir": "b"},
    ),
    "undelivered since": (
        "/federation?order_by=undelivered_since",
        {"order_by": "failure_ts"},
    ),
}
TARGET_RATIO = 3.0


def seed(database: Path, start: int, count: int, rooms: list[str]) -> None:
    """Destinations bench-<n>.example.org as Synapse writes them.

    Each shares 1-3 real rooms. Working ones have received every event;
    failing ones (30 %) lack every event of their rooms since the rooms began,
    so the delivery query has real events to look through; never-worked
    ones (10 %) received nothing.
    """
    now = int(time.time() * 1000)
    rng = random.Random(start)
    with sqlite3.connect(database) as db:
        latest = dict(
            db.execute(
                "SELECT room_id, MAX(stream_ordering) FROM events"  # noqa: S608
                f" WHERE room_id IN ({', '.join('?' for _ in rooms)}) GROUP BY room_id",
                rooms,
            ).fetchall()
        )
        first = db.execute("SELECT MIN(stream_ordering) FROM events").fetchone()[0]
        newest = max(latest.values())
        for n in range(start, start + count):
            name = f"bench-{n:05d}.example.org"
            kind = rng.random()
            if kind < 0.3:  # failing: backing off, events waiting
                interval = rng.choice([600_000, 1_200_000, 2_400_000])
                row = (name, now - rng.randint(0, interval), interval, now - 3_600_000, first)
            elif kind < 0.4:  # never worked
                row = (name, 0, 0, None, None)
            else:  # working
                row = (name, 0, 0, None, newest)
            db.execute(
                "INSERT OR REPLACE INTO destinations (destination, retry_last_ts, retry_interval,"
                " failure_ts, last_successful_stream_ordering) VALUES (?, ?, ?, ?, ?)",
                row,
            )
            for room in rng.sample(rooms, rng.randint(1, min(3, len(rooms)))):
                db.execute(
                    "INSERT OR REPLACE INTO destination_rooms (destination, room_id,"
                    " stream_ordering) VALUES (?, ?, ?)",
                    (name, room, latest[room]),
                )


async def login(http: httpx.AsyncClient, url: str, password: str) -> None:
    form = await http.get(f"{url}/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, "no CSRF token on the login page"
    answer = await http.post(
        f"{url}/login",
        data={
            "csrf_token": csrf.group(1),
            "homeserver": "internal",
            "username": "benchadmin",
            "password": password,
            "next": "/federation",
        },
    )
    assert answer.status_code == 303, answer.text


async def timed(http: httpx.AsyncClient, url: str, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await http.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


async def measure(
    running: RunningDeployment, password: str, total: int, requests: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per query: (website page times, the same list query asked of Synapse), in ms."""
    deployment = running.deployment
    assert deployment.admin is not None
    context = client_ssl_context(deployment)
    url = deployment.admin.url
    token, _ = await access_token(deployment, "internal", "benchadmin", password)
    internal = deployment.homeservers["internal"].base_url
    synapse_list = f"{internal}/_synapse/admin/v1/federation/destinations"
    results: dict[str, tuple[list[float], list[float]]] = {}
    async with (
        httpx.AsyncClient(verify=context, timeout=30) as website,
        httpx.AsyncClient(
            verify=context, timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as synapse,
    ):
        await login(website, url, password)
        for label, (path, params) in QUERIES.items():
            page = url + path.format(half=total // 2)
            query = {"limit": "25", **{k: v.format(half=total // 2) for k, v in params.items()}}
            bare = f"{synapse_list}?{urlencode(query)}"
            await timed(website, page, 5)  # warm up
            await timed(synapse, bare, 5)
            # Interleaved rounds, so that both see the same moments of a noisy machine.
            pages, lists = [], []
            for _ in range(requests // 5):
                pages += await timed(website, page, 5)
                lists += await timed(synapse, bare, 5)
            results[label] = (pages, lists)
    return results


def report(
    total: int, results: dict[str, tuple[list[float], list[float]]]
) -> dict[str, tuple[float, float]]:
    print(f"\n{total} destinations (ms)   website p50   p95   Synapse p50   p95   ratio p95")
    p95s = {}
    for label, (pages, lists) in results.items():
        p95s[label] = (p95(pages), p95(lists))
        print(
            f"  {label:<22} {statistics.median(pages):8.1f} {p95s[label][0]:6.1f} "
            f"{statistics.median(lists):12.1f} {p95s[label][1]:6.1f} "
            f"{p95s[label][0] / p95s[label][1]:8.1f}x"
        )
    return p95s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="homeport-bench-admin-") as tmp:
        # Homeport's production rate limits, as a real deployment has them.
        config = init_deployment(Path(tmp))
        running = RunningDeployment(config)
        running.start()
        try:
            password = secrets.token_urlsafe(12)
            homeport(
                "user",
                "create",
                "-c",
                str(config),
                "internal",
                "benchadmin",
                "--admin",
                "--password",
                password,
            )
            rooms = asyncio.run(_rooms(running, password))
            database = running.layout.homeserver("internal").sqlite_database
            figures: dict[int, dict[str, float]] = {}
            seeded = 0
            for total in (1000, 10000):
                homeport("stop", "-c", str(config), "internal")
                seed(database, seeded, total - seeded, rooms)
                seeded = total
                homeport("start", "-c", str(config), "internal", timeout=240)
                figures[total] = report(
                    total, asyncio.run(measure(running, password, total, args.requests))
                )
            print("\nratio 10,000 / 1,000 (website p95):")
            for label in QUERIES:
                ratio = figures[10000][label][0] / figures[1000][label][0]
                print(f"  {label:<18} {ratio:.2f}x")
            worst = max(figures[10000].values(), key=lambda pair: pair[0] / pair[1])
            ratio = worst[0] / worst[1]
            print(
                f"\nworst website / Synapse list query at 10,000 (p95): {worst[0]:.1f} ms / "
                f"{worst[1]:.1f} ms = {ratio:.1f}x (target <= {TARGET_RATIO:g}x): "
                f"{'met' if ratio <= TARGET_RATIO else 'MISSED'}"
            )
        finally:
            running.stop()
            running.kill_leftovers()


async def _rooms(running: RunningDeployment, password: str) -> list[str]:
    """A few real rooms on internal for destination_rooms to point at."""
    deployment = running.deployment
    base = deployment.homeservers["internal"].base_url
    token, _ = await access_token(deployment, "internal", "benchadmin", password)
    async with SynapseClient(base, client_ssl_context(deployment), token) as client:
        rooms = []
        for index in range(5):
            created = await client.request(
                "POST", "/_matrix/client/v3/createRoom", json={"name": f"bench room {index}"}
            )
            rooms.append(str(created["room_id"]))
        return rooms


if __name__ == "__main__":
    from bench.run_info import announced

    with announced():
        main()
