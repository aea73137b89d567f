"""Leases, and group sync's turns on them, on SQLite and on this machine's real PostgreSQL.

Each holder has an engine of its own, as the command and the service do.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine

from homeport.config.loader import load_deployment
from homeport.groupsync.turns import EXIT_IN_PROGRESS, RunInProgress, TurnLost, turn
from homeport.store.database import create_store_engine, store_url
from homeport.store.leases import Lease, LeaseHolder
from homeport.store.migrate import migrate
from tests.store.test_store import deployment_file


@pytest.fixture(params=["sqlite", "postgresql"])
def engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    database = "sqlite"
    if request.param == "postgresql":
        database = request.getfixturevalue("postgres_database")
    url = store_url(load_deployment(deployment_file(tmp_path, database))[0])
    one, other = create_store_engine(url), create_store_engine(url)
    migrate(one)
    yield one, other
    one.dispose()
    other.dispose()


def test_one_holder_at_a_time_until_it_releases(engines: tuple[Engine, Engine]) -> None:
    one, other = engines
    service = Lease(one, "groupsync", "internal", "service")
    command = Lease(other, "groupsync", "internal", "command")
    assert service.acquire() is None
    assert service.acquire() is None  # ours already: taken again
    held = command.acquire()
    assert held is not None
    assert held.holder == "service"
    assert held.expires_ts - held.acquired_ts == 30_000
    assert command.current() == held
    # Another homeserver's, or another job's, lease is another lease.
    assert Lease(other, "groupsync", "external", "command").acquire() is None
    assert Lease(other, "backup", "internal", "command").acquire() is None
    command.release()  # not its lease: changes nothing
    assert command.acquire() is not None
    service.release()
    assert command.current() is None
    assert command.acquire() is None
    assert service.acquire() == LeaseHolder("command", *_times(command))


def _times(lease: Lease) -> tuple[int, int]:
    current = lease.current()
    assert current is not None
    return current.acquired_ts, current.expires_ts


def test_an_expired_lease_is_taken_over_and_renewing_keeps_it(
    engines: tuple[Engine, Engine],
) -> None:
    one, other = engines
    crashed = Lease(one, "groupsync", "internal", "crashed", ttl=0.5)
    alive = Lease(other, "groupsync", "internal", "alive", ttl=0.5)
    assert crashed.acquire() is None
    assert alive.acquire() is not None
    time.sleep(0.6)  # the holder stopped renewing (it crashed): the lease expires
    assert crashed.current() is None
    assert alive.acquire() is None
    assert not crashed.renew()  # taken over: the old holder learns it
    for _ in range(4):  # renewed every 0.2 s: held for 0.8 s, past its 0.5 s
        time.sleep(0.2)
        assert alive.renew()
        assert crashed.acquire() is not None
    acquired_ts, expires_ts = _times(alive)
    assert expires_ts - acquired_ts >= 800  # acquired once, renewed since


def test_holders_racing_for_a_free_lease_get_it_once(engines: tuple[Engine, Engine]) -> None:
    one, other = engines
    start = threading.Barrier(8)

    def contend(n: int) -> bool:
        lease = Lease(one if n % 2 else other, "groupsync", "internal", f"holder{n}")
        start.wait()
        return lease.acquire() is None

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(contend, range(8)))
    assert won.count(True) == 1


async def test_a_turn_waits_for_the_holder_then_says_whom_it_waited_for(
    engines: tuple[Engine, Engine],
) -> None:
    one, other = engines
    seen: list[str] = []
    held = asyncio.Event()

    async def service() -> None:
        async with turn(one, "internal", "the service", wait=None) as mine:
            assert mine.waited_for is None
            held.set()
            await asyncio.sleep(1.2)

    running = asyncio.create_task(service())
    await held.wait()
    async with turn(
        other, "internal", "the command", wait=10, on_wait=lambda h: seen.append(h.holder)
    ) as mine:
        assert running.done()
    assert mine.waited_for is not None
    assert mine.waited_for.holder.startswith("the service, pid ")
    assert 0.8 < mine.waited < 3
    assert seen == [mine.waited_for.holder]


async def test_a_turn_waits_only_so_long(engines: tuple[Engine, Engine]) -> None:
    one, other = engines
    async with turn(one, "internal", "the service", wait=None):
        started = time.monotonic()
        with pytest.raises(RunInProgress) as busy:
            async with turn(other, "internal", "the command", wait=0.6):
                raise AssertionError("two runs at once")
        assert 0.6 <= time.monotonic() - started < 2
    assert busy.value.exit_code == EXIT_IN_PROGRESS
    assert "another group sync run is in progress (the service, pid" in str(busy.value)
    assert "--wait" in str(busy.value)
    async with turn(other, "internal", "the command", wait=0) as mine:  # free again
        assert mine.waited_for is None


async def test_a_turn_taken_over_stops_its_run(engines: tuple[Engine, Engine]) -> None:
    one, other = engines

    async def stalled_run() -> None:
        async with turn(one, "internal", "stalled", wait=None, ttl=0.9):
            time.sleep(1.0)  # the event loop stalls: no renewal, the lease expires
            assert Lease(other, "groupsync", "internal", "taker").acquire() is None
            await asyncio.sleep(5)  # cancelled at the next renewal, which finds it taken
            raise AssertionError("went on beside the run that took over")

    with pytest.raises(TurnLost):
        await stalled_run()
    current = Lease(other, "groupsync", "internal", "probe").current()
    assert current is not None
    assert current.holder == "taker"  # the stalled run released nothing of the taker's
