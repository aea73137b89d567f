#!/usr/bin/env python3
"""Render time of the admin website's Federation tab with 1,000 and 10,000 destinations.

Starts the starter deployment (the settings `homeport init` writes), stops
internal, seeds destinations into its SQLite database through Synapse's own
tables (`destinations`, `destination_rooms`, as Synapse records them: a mix
of working, failing and never-worked servers, each in 1-3 real rooms),
starts it again, logs in to the website as a server admin and times, over
loopback, each page of the tab (25 destinations, as the tab shows them):

  first              /federation
  middle             /federation?from=<half>
  sorted             /federation?order_by=retry_last_ts&dir=b
  searched           /federation?q=<a name fragment>
  next attempt       /federation?order_by=next_attempt       (Homeport's order)
  undelivered since  /federation?order_by=undelivered_since  (Homeport's order)

Each page is one request to the Homeport module: the page of 25
destinations, the room count of each, and the delivery state of every
destination that lacks events (40 % of them here: a large outage, the
worst case); the module's answer alone is timed too. "Undelivered since"
is read from the index the alerts service keeps in Homeport's store (the
bench waits until its check has indexed every waiting destination), then
the module's `given` page of those 25 (what the website asks it).

Baseline: Synapse's own destination list query,
`GET /_synapse/admin/v1/federation/destinations`, on the same database,
for the same page (same from, limit 25, order, direction and search). For
Homeport's two orders, which Synapse lacks, it is the list as the tab shows
it first (by destination, 25): what Synapse alone answers for a page of the
tab. Rounds interleave every page with its baseline (one request each per
round, the order rotating), so both see the same moments of a shared
machine. Target: the website's p95 at most 3x its baseline's, and flat as
the count grows (10,000 / 1,000 ratio near 1).

    .venv/bin/python bench/admin_destinations.py --requests 60

(60 requests: a p95 of 30 is the second-slowest answer, moved by one outlier.)
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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.admin.views.federation import PAGE_SIZE  # noqa: E402
from homeport.alerts.store import checked_at, waiting_order  # noqa: E402
from homeport.policy.effective import effective_whitelist  # noqa: E402
from homeport.store.database import open_store  # noqa: E402
from homeport.synapse.admin_api import (  # noqa: E402
    DESTINATIONS,
    SYNAPSE_ORDERS,
    DestinationQuery,
    SynapseAdmin,
)
from homeport.synapse.api import SynapseClient  # noqa: E402
from homeport.synapse_module.contract import DESTINATIONS_PATH, GIVEN_ORDER  # noqa: E402
from homeport.trust import client_ssl_context  # noqa: E402
from tests.harness import (  # noqa: E402
    RunningDeployment,
    access_token,
    homeport,
    init_deployment,
)

TARGET_RATIO = 3.0
SEARCH = "bench-004"
KINDS = ("website", "module", "Synapse")  # what each round times, per page


@dataclass(frozen=True)
class Page:
    """A page of the Federation tab: its address, and the query it asks the module."""

    label: str
    path: str
    query: DestinationQuery

    @property
    def baseline(self) -> DestinationQuery:
        """Synapse's own list query for this page: the same one where Synapse has the
        order; for Homeport's orders, the list as the tab shows it first."""
        if self.query.order_by in SYNAPSE_ORDERS:
            return self.query
        return DestinationQuery(0, PAGE_SIZE)


def pages(total: int) -> list[Page]:
    half = total // 2
    return [
        Page("first", "/federation", DestinationQuery(0, PAGE_SIZE)),
        Page("middle", f"/federation?from={half}", DestinationQuery(half, PAGE_SIZE)),
        Page(
            "sorted",
            "/federation?order_by=retry_last_ts&dir=b",
            DestinationQuery(0, PAGE_SIZE, "retry_last_ts", "b"),
        ),
        Page("searched", f"/federation?q={SEARCH}", DestinationQuery(0, PAGE_SIZE, search=SEARCH)),
        Page(
            "next attempt",
            "/federation?order_by=next_attempt",
            DestinationQuery(0, PAGE_SIZE, "next_attempt"),
        ),
        Page(
            "undelivered since",
            "/federation?order_by=undelivered_since",
            DestinationQuery(0, PAGE_SIZE, "undelivered_since"),
        ),
    ]


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
            row: tuple[str, int, int, int | None, int | None]
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


async def timed(http: httpx.AsyncClient, url: str) -> float:
    """One request, in milliseconds; it must succeed."""
    started = time.perf_counter()
    response = await http.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


Timings = dict[str, dict[str, list[float]]]  # page -> kind -> ms


async def measure(running: RunningDeployment, password: str, total: int, requests: int) -> Timings:
    """Per page, per kind (website page, the module's answer, Synapse's list query), in ms.

    Each round asks every page once of each kind, the kinds' order rotating from
    round to round; one round first as a warm-up, not counted.
    """
    deployment = running.deployment
    assert deployment.admin is not None
    context = client_ssl_context(deployment)
    url = deployment.admin.url
    token, _ = await access_token(deployment, "internal", "benchadmin", password)
    internal = deployment.homeservers["internal"]
    # The servers the policy allows, whose counts the website asks along with the page.
    also: list[tuple[str, str | int]] = [
        ("also", server)
        for server in effective_whitelist(deployment, "internal") or []
        if server != internal.server_name
    ]
    engine = open_store(deployment)
    try:
        waiting, _ = waiting_order(engine, "internal", 0, PAGE_SIZE, "", False)
    finally:
        engine.dispose()

    def module_params(query: DestinationQuery) -> list[tuple[str, str | int]]:
        if query.order_by != "undelivered_since":
            return query.params() + also
        # What the website asks once it read the page's names from the store.
        given: list[tuple[str, str | int]] = [
            ("order_by", GIVEN_ORDER), ("from", 0), ("limit", PAGE_SIZE),
            ("rest_from", 0), ("rest_limit", PAGE_SIZE - len(waiting)),
        ]  # fmt: skip
        return given + [("name", n) for n in waiting] + also

    urls = {
        page.label: {
            "website": url + page.path,
            "module": f"{internal.base_url}{DESTINATIONS_PATH}?"
            + urlencode(module_params(page.query)),
            "Synapse": f"{internal.base_url}{DESTINATIONS}?" + urlencode(page.baseline.params()),
        }
        for page in pages(total)
    }
    results: Timings = {label: {kind: [] for kind in KINDS} for label in urls}
    async with (
        httpx.AsyncClient(verify=context, timeout=30) as website,
        httpx.AsyncClient(
            verify=context, timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as synapse,
    ):
        await login(website, url, password)
        clients = {"website": website, "module": synapse, "Synapse": synapse}
        for number in range(requests + 1):
            shift = number % len(KINDS)
            for label, by_kind in urls.items():
                for kind in KINDS[shift:] + KINDS[:shift]:
                    elapsed = await timed(clients[kind], by_kind[kind])
                    if number:
                        results[label][kind].append(elapsed)
    return results


def baseline_name(page: Page) -> str:
    if page.baseline == page.query:
        return "the same query"
    return "by destination (Synapse lacks this order)"


def report(total: int, results: Timings) -> dict[str, tuple[float, float]]:
    """Print the table; return each page's (website p95, baseline p95)."""
    print(
        f"\n{total} destinations (ms)   website p50   p95   module p50   p95   "
        "Synapse p50   p95   website/Synapse p95   module/Synapse p95   Synapse baseline"
    )
    p95s = {}
    for page in pages(total):
        times = results[page.label]
        site, module, bare = (p95(times[kind]) for kind in KINDS)
        p95s[page.label] = (site, bare)
        print(
            f"  {page.label:<22} {statistics.median(times['website']):8.1f} {site:6.1f} "
            f"{statistics.median(times['module']):11.1f} {module:6.1f} "
            f"{statistics.median(times['Synapse']):12.1f} {bare:6.1f} "
            f"{site / bare:18.1f}x {module / bare:19.1f}x   {baseline_name(page)}"
        )
    return p95s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=60)
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
            figures: dict[int, dict[str, tuple[float, float]]] = {}
            seeded = 0
            for total in (1000, 10000):
                homeport("stop", "-c", str(config), "internal")
                seed(database, seeded, total - seeded, rooms)
                seeded = total
                homeport("start", "-c", str(config), "internal", timeout=240)
                asyncio.run(_indexed(running, password))
                figures[total] = report(
                    total, asyncio.run(measure(running, password, total, args.requests))
                )
            print("\nratio 10,000 / 1,000 (website p95):")
            for label in figures[10000]:
                ratio = figures[10000][label][0] / figures[1000][label][0]
                print(f"  {label:<18} {ratio:.2f}x")
            label, worst = max(figures[10000].items(), key=lambda item: item[1][0] / item[1][1])
            ratio = worst[0] / worst[1]
            print(
                f"\nworst website / Synapse list query at 10,000 (p95), {label}: "
                f"{worst[0]:.1f} ms / {worst[1]:.1f} ms = {ratio:.1f}x "
                f"(target <= {TARGET_RATIO:g}x): "
                f"{'met' if ratio <= TARGET_RATIO else 'MISSED'}"
            )
        finally:
            running.stop()
            running.kill_leftovers()


async def _indexed(running: RunningDeployment, password: str) -> None:
    """Until the alerts service's check has indexed every destination that waits."""
    deployment = running.deployment
    internal = deployment.homeservers["internal"]
    token, _ = await access_token(deployment, "internal", "benchadmin", password)
    async with SynapseClient(internal.base_url, client_ssl_context(deployment), token) as client:
        _, expected = await SynapseAdmin(client).undelivered(limit=0)
    restarted = time.time() * 1000
    engine = open_store(deployment)
    try:
        deadline = time.monotonic() + 120
        while True:
            checked = checked_at(engine, "internal") or 0
            _, indexed = waiting_order(engine, "internal", 0, 1, "", False)
            if checked > restarted and indexed == expected:
                print(f"  the alerts service indexed {indexed} waiting destinations")
                return
            assert time.monotonic() < deadline, (indexed, expected)
            await asyncio.sleep(1)
    finally:
        engine.dispose()


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
