"""The website's snapshot of the waiting destinations: "undelivered since" pages as slices."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from homeport.admin.delivery import DeliverySnapshot
from homeport.synapse.models import Undelivered

ROWS = [Undelivered(f"s{n}.org", 1, 1000 * n) for n in range(7)]  # oldest first


def snapshot(total: int = len(ROWS), stored: bool = True) -> DeliverySnapshot:
    found = DeliverySnapshot(CollectorRegistry())
    found.latest["internal"] = (ROWS, total)
    if stored:
        found._stored.add("internal")
    return found


def test_pages_in_either_direction_and_searched() -> None:
    s = snapshot()
    assert s.waiting_page("internal", 0, 3, "", False) == (["s0.org", "s1.org", "s2.org"], 7)
    assert s.waiting_page("internal", 6, 3, "", False) == (["s6.org"], 7)
    assert s.waiting_page("internal", 0, 3, "", True) == (["s6.org", "s5.org", "s4.org"], 7)
    assert s.waiting_page("internal", 6, 3, "", True) == (["s0.org"], 7)
    assert s.waiting_page("internal", 9, 3, "", True) == ([], 7)
    assert s.waiting_page("internal", 0, 5, "S3", False) == (["s3.org"], 1)


def test_none_when_the_snapshot_does_not_hold_them_all_or_came_from_synapse() -> None:
    assert snapshot(total=20).waiting_page("internal", 0, 3, "", False) is None
    assert snapshot(stored=False).waiting_page("internal", 0, 3, "", False) is None
    assert snapshot().waiting_page("external", 0, 3, "", False) is None


def test_who_is_late_is_judged_at_the_pages_moment_not_the_snapshots() -> None:
    s = snapshot()
    s._since["internal"] = [u.since_ms for u in ROWS]
    # At 31 s, the events of s0 (0 s) and s1 (1 s) have waited 30 s or more.
    assert s.late("internal", 31_000, 5) == (ROWS[:2], 2)
    # Ten seconds on, with the same snapshot: every one of them.
    assert s.late("internal", 41_000, 5) == (ROWS[:5], 7)
    assert s.late("external", 41_000, 5) == ([], 0)
