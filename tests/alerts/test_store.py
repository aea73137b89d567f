"""Incidents, the waiting destinations and the outbox on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine

from homeport.alerts import store
from homeport.alerts.incidents import Observation, Settings, Waiting, advance
from tests.store import test_groupsync_history as history_tests

SETTINGS = Settings(grace_ms=60_000, settle_ms=30_000)
SIBLING = "external:8449"
WATCHED = frozenset({SIBLING})
MIN = 60_000


# The migrated store, on SQLite and on this machine's PostgreSQL.
engine = history_tests.engine


def one_check(engine: Engine, at: int, waiting: dict[str, Waiting], webhook: bool = True) -> None:
    """What the service does for one homeserver: load, advance, write."""
    observation = Observation("internal", at, waiting)
    step = advance(store.open_incidents(engine, "internal"), observation, SETTINGS, WATCHED)
    store.record_step(engine, "internal", step, waiting, at, room=True, webhook=webhook)


def test_an_incident_lives_in_the_store_and_its_notices_in_the_outbox(engine: Engine) -> None:
    down = {SIBLING: Waiting(0, 2, 5), "other.org": Waiting(1_000, 1, 1)}
    for minute in (1, 2):
        one_check(engine, minute * MIN, down)
    (opened,) = [i for i in store.open_incidents(engine, "internal") if i.destination == SIBLING]
    assert {i.destination for i in store.open_in(engine, ["internal"])} == {SIBLING, "other.org"}
    assert store.open_in(engine, ["external"]) == []
    assert opened.alerted
    assert opened.id is not None
    (firing,) = store.due_notices(engine, 2 * MIN)
    assert firing.notice.status == "firing"
    assert [i.id for i in firing.notice.incidents] == [opened.id]
    assert (firing.room, firing.webhook) == ("pending", "pending")

    store.mark_notice(engine, firing.id, "sent", "pending", 1, 3 * MIN, "webhook: refused")
    assert store.due_notices(engine, 2 * MIN) == []  # its next try is not due yet
    assert [n.id for n in store.due_notices(engine, 3 * MIN)] == [firing.id]
    assert store.undelivered_notices(engine) == 1
    store.mark_notice(engine, firing.id, "sent", "sent", 1, 3 * MIN, None)
    assert store.undelivered_notices(engine) == 0

    # Fine again: settled after 30 s, the recovery in the outbox; the webhook is off now.
    one_check(engine, 3 * MIN, {}, webhook=False)
    one_check(engine, 4 * MIN, {}, webhook=False)
    assert store.open_incidents(engine, "internal") == []
    (resolved,) = store.due_notices(engine, 4 * MIN)
    assert (resolved.notice.status, resolved.webhook) == ("resolved", "off")
    last = store.last_incidents(engine, "internal", [SIBLING, "other.org", "never.org"])
    assert sorted(last) == [SIBLING, "other.org"]
    assert last[SIBLING].ended_ms == 3 * MIN
    assert [i.id for i in store.told_open(engine)] == []
    assert store.open_in(engine, ["internal"]) == []  # both ended
    assert len(store.recent_incidents(engine, ["internal"], 0)) == 2


def test_the_waiting_destinations_follow_each_check_in_their_order(engine: Engine) -> None:
    first = {f"s{n:02}.org": Waiting(1_000 * (10 - n), 1, n) for n in range(10)}
    one_check(engine, MIN, first)
    names, total = store.waiting_order(engine, "internal", 0, 3, "", False)
    assert (names, total) == (["s09.org", "s08.org", "s07.org"], 10)
    names, _ = store.waiting_order(engine, "internal", 8, 5, "", False)
    assert names == ["s01.org", "s00.org"]
    names, total = store.waiting_order(engine, "internal", 0, 3, "S0_", True)
    assert (names, total) == ([], 0)  # the search is a substring, never a pattern
    names, total = store.waiting_order(engine, "internal", 0, 2, "S0", True)
    assert (names, total) == (["s00.org", "s01.org"], 10)
    # Some delivered, one waits longer, one new.
    second = {name: w for name, w in first.items() if name < "s05.org"}
    second["s04.org"] = Waiting(0, 3, 7)
    second["new.org"] = Waiting(500_000, 1, 1)
    one_check(engine, 2 * MIN, second)
    names, total = store.waiting_order(engine, "internal", 0, 10, "", False)
    assert names == ["s04.org", "s03.org", "s02.org", "s01.org", "s00.org", "new.org"]
    assert total == 6


def test_old_incidents_go_past_their_retention(engine: Engine) -> None:
    one_check(engine, MIN, {SIBLING: Waiting(0, 1, 1)})
    one_check(engine, 2 * MIN, {})
    one_check(engine, 3 * MIN, {})
    assert len(store.recent_incidents(engine, ["internal"], 0)) == 1
    assert store.prune(engine, 3 * MIN, retention_ms=10 * MIN) == 0
    assert store.prune(engine, 20 * MIN, retention_ms=10 * MIN) == 1
    assert store.recent_incidents(engine, ["internal"], 0) == []
