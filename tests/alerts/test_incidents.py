"""How a check advances a homeserver's incidents, and what it tells: table-driven.

Times in seconds from an outage's start, as milliseconds; grace 120 s, settle
60 s, a destination "not delivering" once its oldest waiting event is 30 s old.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from homeport.alerts.incidents import (
    Incident,
    Notice,
    Observation,
    Settings,
    Waiting,
    advance,
)

SETTINGS = Settings(grace_ms=120_000, settle_ms=60_000, not_delivering_ms=30_000)
SIBLING = "external:8449"
PARTNER = "partner.example.org"
STRANGER = "stranger.example.org"
WATCHED = frozenset({SIBLING, PARTNER})


def s(seconds: float) -> int:
    return int(seconds * 1000)


def waiting(since: float, rooms: int = 1, events: int = 1) -> Waiting:
    return Waiting(s(since), rooms, events)


def check(
    at: float,
    waits: dict[str, Waiting] | None = None,
    silent: dict[str, str] | None = None,
    never: dict[str, float] | None = None,
) -> Observation:
    return Observation(
        "internal",
        s(at),
        waits or {},
        silent or {},
        {k: s(v) for k, v in (never or {}).items()},
    )


def run(checks: Iterable[Observation]) -> tuple[list[Incident], list[Notice]]:
    """Every check in turn, as the service runs them: open incidents carried over (IDs
    given as the store would); all incidents and every notice in the end."""
    incidents: dict[int, Incident] = {}
    notices: list[Notice] = []
    for observation in checks:
        step = advance([i for i in incidents.values() if i.open], observation, SETTINGS, WATCHED)
        for incident in step.changed:
            if incident.id is None:
                incident = dataclasses.replace(incident, id=len(incidents) + 1)
            incidents[incident.id] = incident  # type: ignore[index]
        notices += step.notices
    return list(incidents.values()), notices


def told(notices: list[Notice]) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(n.status, [(i.destination, i.kind) for i in n.incidents]) for n in notices]


def test_an_outage_past_its_grace_is_told_once_and_its_end_once() -> None:
    checks = [check(t, {SIBLING: waiting(0, rooms=2, events=t // 15)}) for t in range(15, 200, 15)]
    checks += [check(t) for t in range(200, 300, 15)]
    incidents, notices = run(checks)
    assert told(notices) == [
        ("firing", [(SIBLING, "not_delivering")]),
        ("resolved", [(SIBLING, "not_delivering")]),
    ]
    (incident,) = incidents
    assert incident.started_ms == 0  # when the oldest waiting event was sent
    assert incident.ended_ms == s(200)  # the first check that found it fine
    assert (incident.rooms, incident.events) == (2, 13)  # the most that waited
    assert notices[0].incidents[0].alerted


@pytest.mark.parametrize(
    ("name", "checks", "expected"),
    [
        (
            "events waiting for less than 30 s are no incident at all",
            [check(t, {SIBLING: waiting(t - 20)}) for t in range(20, 400, 15)],
            0,
        ),
        (
            "an outage shorter than the grace is kept, never told",
            [check(t, {SIBLING: waiting(0)}) for t in (30, 60, 90)] + [check(150), check(230)],
            1,
        ),
    ],
)
def test_short_troubles_are_not_told(name: str, checks: list[Observation], expected: int) -> None:
    incidents, notices = run(checks)
    assert notices == [], name
    assert len(incidents) == expected, name
    assert all(not i.open for i in incidents)


def test_a_flapping_destination_is_one_incident_told_once() -> None:
    # Fine for 30 s, then waiting again, over and over: never fine for `settle`.
    checks = []
    for cycle in range(8):
        base = cycle * 75
        checks.append(check(base + 15, {SIBLING: waiting(base - 30)}))
        checks.append(check(base + 30, {SIBLING: waiting(base - 30)}))
        checks.append(check(base + 45))
        checks.append(check(base + 60))
    checks += [check(t) for t in range(600, 700, 15)]
    incidents, notices = run(checks)
    assert len(incidents) == 1
    assert told(notices) == [
        ("firing", [(SIBLING, "not_delivering")]),
        ("resolved", [(SIBLING, "not_delivering")]),
    ]


def test_only_watched_destinations_are_told_but_every_one_is_kept() -> None:
    waits = {STRANGER: waiting(0), PARTNER: waiting(0)}
    incidents, notices = run(check(t, waits) for t in (60, 120, 135))
    assert told(notices) == [("firing", [(PARTNER, "not_delivering")])]
    assert sorted(i.destination for i in incidents) == [PARTNER, STRANGER]


def test_a_sibling_that_stops_answering_is_told_from_the_first_failed_check() -> None:
    silent = {SIBLING: "connection refused or no route to it"}
    checks = [check(t, silent=silent) for t in range(100, 250, 15)] + [check(250), check(310)]
    incidents, notices = run(checks)
    assert told(notices) == [
        ("firing", [(SIBLING, "not_answering")]),
        ("resolved", [(SIBLING, "not_answering")]),
    ]
    assert notices[0].incidents[0].detail == "connection refused or no route to it"
    firing_check = next(c for c in checks if c.at_ms - s(100) >= SETTINGS.grace_ms)
    (incident,) = incidents
    assert incident.started_ms == s(100)
    assert firing_check.at_ms == s(220)


def test_one_notice_per_check_lists_every_destination_due() -> None:
    waits = {SIBLING: waiting(0), PARTNER: waiting(10)}
    never = {SIBLING: 1.0}
    _, notices = run(check(t, waits, never=never) for t in (60, 126, 141))
    assert told(notices) == [
        ("firing", [(SIBLING, "not_delivering"), (SIBLING, "never_worked")]),
        ("firing", [(PARTNER, "not_delivering")]),
    ]


def test_an_incident_that_recovers_while_settling_past_its_grace_is_not_told() -> None:
    # Bad until 110 s (grace 120 s not reached), then fine: settling, never told.
    checks = [check(t, {SIBLING: waiting(0)}) for t in (60, 110)] + [check(t) for t in (125, 200)]
    incidents, notices = run(checks)
    assert notices == []
    assert incidents[0].ended_ms == s(125)


def test_a_check_of_a_restarted_service_carries_the_stored_incident_on() -> None:
    # What the store gave back after a restart: told already, still open.
    stored = Incident("internal", SIBLING, "not_answering", s(0), s(300), alerted=True, id=7)
    again = advance([stored], check(400, silent={SIBLING: "refused"}), SETTINGS, WATCHED)
    assert again.notices == []
    assert [i.id for i in again.changed] == [7]
    over = advance([stored], check(400), SETTINGS, WATCHED)
    assert over.notices == []  # settling first
    settled = advance(over.changed, check(460), SETTINGS, WATCHED)
    assert told(settled.notices) == [("resolved", [(SIBLING, "not_answering")])]


def test_a_steady_outage_changes_nothing_from_one_check_to_the_next() -> None:
    waits = {SIBLING: waiting(0, rooms=2, events=5), STRANGER: waiting(0)}
    first = advance([], check(60, waits), SETTINGS, WATCHED)
    opened = [dataclasses.replace(i, id=n) for n, i in enumerate(first.changed)]
    again = advance(opened, check(75, waits), SETTINGS, WATCHED)
    assert again.changed == []  # nothing to write
    more = {**waits, SIBLING: waiting(0, rooms=2, events=6)}
    moved = advance(opened, check(90, more), SETTINGS, WATCHED)
    assert [(i.destination, i.events, i.last_bad_ms) for i in moved.changed] == [
        (SIBLING, 6, s(90))
    ]
