"""Leases in the store: one holder at a time of a homeserver's exclusive job.

A lease is a row (job, homeserver) naming its holder and when it expires; the
holder renews it while it works and deletes it when done, and anyone may take
it over once it has expired, so a holder that crashed blocks the others for
one `ttl` at most. Why a row rather than PostgreSQL's advisory lock (which
migrations take): the row works the same on SQLite, the default store, which
has no such lock (and holding its write lock for a whole run would stop the
run's own history writes and every other writer); and it says who holds the
job and since when, which a waiting command tells its user. Expiry is judged
by the database's clock on PostgreSQL, which the holders on other machines
share; SQLite's holders share this machine's clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from homeport.store.schema import leases

TTL = 30.0  # seconds a lease lasts unless renewed


@dataclass(frozen=True)
class LeaseHolder:
    holder: str
    acquired_ts: int  # milliseconds since the epoch, by the database's clock
    expires_ts: int


def _now_ms(connection: Connection) -> int:
    if connection.dialect.name == "postgresql":
        now = "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
        return int(connection.execute(text(now)).scalar_one())
    return int(time.time() * 1000)


def _insert_missing(connection: Connection, values: dict[str, Any]) -> None:
    """The lease's row, free (expired at 0), unless it exists."""
    if connection.dialect.name == "postgresql":
        connection.execute(postgresql.insert(leases).values(values).on_conflict_do_nothing())
    else:
        connection.execute(sqlite.insert(leases).values(values).on_conflict_do_nothing())


class Lease:
    """One holder's side of the lease on `job` of `homeserver`."""

    def __init__(
        self, engine: Engine, job: str, homeserver: str, holder: str, ttl: float = TTL
    ) -> None:
        self._engine = engine
        self._key = (leases.c.job == job) & (leases.c.homeserver == homeserver)
        self._row = {"job": job, "homeserver": homeserver}
        self.holder = holder
        self.ttl_ms = int(ttl * 1000)

    def acquire(self) -> LeaseHolder | None:
        """Take the lease if it is free, expired or ours; otherwise, who holds it.

        The conditional update is the one way in: on PostgreSQL a concurrent
        one waits for ours and then finds the lease taken; SQLite runs writers
        one at a time."""
        with self._engine.begin() as connection:
            _insert_missing(
                connection, {**self._row, "holder": "", "acquired_ts": 0, "expires_ts": 0}
            )
            now = _now_ms(connection)
            free = (leases.c.expires_ts <= now) | (leases.c.holder == self.holder)
            taken = connection.execute(
                update(leases)
                .where(self._key & free)
                .values(holder=self.holder, acquired_ts=now, expires_ts=now + self.ttl_ms)
            )
            if taken.rowcount == 1:
                return None
            row = connection.execute(select(leases).where(self._key)).one()
        return LeaseHolder(row.holder, row.acquired_ts, row.expires_ts)

    def renew(self) -> bool:
        """Push the expiry on; False when someone took the lease over (it had expired)."""
        with self._engine.begin() as connection:
            now = _now_ms(connection)
            renewed = connection.execute(
                update(leases)
                .where(self._key & (leases.c.holder == self.holder))
                .values(expires_ts=now + self.ttl_ms)
            )
        return renewed.rowcount == 1

    def release(self) -> None:
        """Free the lease, if it is still ours."""
        with self._engine.begin() as connection:
            connection.execute(delete(leases).where(self._key & (leases.c.holder == self.holder)))

    def current(self) -> LeaseHolder | None:
        """Whoever holds the lease now (not expired), if anyone."""
        with self._engine.connect() as connection:
            now = _now_ms(connection)
            row = connection.execute(
                select(leases).where(self._key & (leases.c.expires_ts > now))
            ).first()
        return None if row is None else LeaseHolder(row.holder, row.acquired_ts, row.expires_ts)
