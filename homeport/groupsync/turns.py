"""One group sync run at a time per homeserver: `groupsync run` and the service take turns.

Two runs at once would plan the same work from the same state and race to do
it (the loser's account creations fail with M_USER_IN_USE). The turn is a
lease in Homeport's store (`homeport.store.leases`), so it holds between a
command on one machine and the service on another that share the store. The
service waits as long as it takes; the command waits up to `--wait` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from homeport.errors import HomeportError
from homeport.store.leases import TTL, Lease, LeaseHolder

JOB = "groupsync"
POLL = 0.5  # seconds between looks at a lease someone else holds
EXIT_IN_PROGRESS = 75  # sysexits' EX_TEMPFAIL: nothing went wrong, try again later


class RunInProgress(HomeportError):
    """Another run held the turn for as long as we were willing to wait."""

    exit_code = EXIT_IN_PROGRESS

    def __init__(self, holder: LeaseHolder, waited: float) -> None:
        self.holder = holder
        self.waited = waited
        super().__init__(
            f"another group sync run is in progress ({holder.holder}, since "
            f"{clock(holder.acquired_ts)}); gave up after {waited:.0f} s: run again once "
            "it is done, or wait longer with --wait SECONDS"
        )


class TurnLost(HomeportError):
    """Our lease expired and another run took it: this run stopped rather than race it."""


@dataclass
class Turn:
    """How getting the turn went: whom we waited for, and how long."""

    waited: float = 0.0
    waited_for: LeaseHolder | None = None


def clock(ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def holder_name(who: str) -> str:
    """Who holds the turn, as a waiting user reads it; the suffix tells same-pid holders apart."""
    return f"{who}, pid {os.getpid()} on {socket.gethostname()} [{secrets.token_hex(3)}]"


async def _acquire(
    lease: Lease, wait: float | None, on_wait: Callable[[LeaseHolder], None] | None
) -> Turn:
    started = time.monotonic()
    turn = Turn()
    while True:
        held = await asyncio.to_thread(lease.acquire)
        if held is None:
            turn.waited = time.monotonic() - started if turn.waited_for else 0.0
            return turn
        if on_wait is not None and (
            turn.waited_for is None or turn.waited_for.holder != held.holder
        ):
            on_wait(held)
        turn.waited_for = held
        waited = time.monotonic() - started
        if wait is not None and waited >= wait:
            raise RunInProgress(held, waited)
        await asyncio.sleep(POLL if wait is None else min(POLL, wait - waited))


async def _renew(lease: Lease, every: float, lost: Callable[[], None]) -> None:
    """Keep the lease while the run goes on; a store that fails a while is tried again."""
    while True:
        await asyncio.sleep(every)
        try:
            kept = await asyncio.to_thread(lease.renew)
        except SQLAlchemyError:
            continue  # still ours unless it expires meanwhile and is taken: then we learn it
        if not kept:
            lost()
            return


@contextlib.asynccontextmanager
async def turn(
    engine: Engine,
    homeserver: str,
    who: str,
    *,
    wait: float | None,
    on_wait: Callable[[LeaseHolder], None] | None = None,
    ttl: float = TTL,
) -> AsyncIterator[Turn]:
    """Hold the turn of `homeserver`'s group sync for the block, waiting for it first.

    `wait` None waits as long as it takes; otherwise `RunInProgress` after that
    many seconds. Should the lease be taken over meanwhile (it expired: this
    process stalled), the block is cancelled and `TurnLost` raised.
    """
    lease = Lease(engine, JOB, homeserver, holder_name(who), ttl)
    mine = await _acquire(lease, wait, on_wait)
    owner = asyncio.current_task()
    assert owner is not None
    lost = False

    def taken_over() -> None:
        nonlocal lost
        lost = True
        owner.cancel()

    renewer = asyncio.create_task(_renew(lease, ttl / 3, taken_over))
    try:
        yield mine
    except asyncio.CancelledError:
        if not lost:
            raise
        owner.uncancel()
        raise TurnLost(
            f"group sync's turn on {homeserver} expired and another run took it; this run "
            "stopped, the other one goes on from what Synapse holds"
        ) from None
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        with contextlib.suppress(SQLAlchemyError):  # then it expires after `ttl`
            await asyncio.to_thread(lease.release)
