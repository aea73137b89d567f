"""Federation incidents: what one check of a homeserver makes of the open ones. Pure.

A check observes, for one homeserver: every destination whose events wait
(and since when), which sibling homeservers answer, and which siblings have
never received anything. `advance` turns that and the incidents still open
into the next state: incidents opened, carried on, ended, and the notices
due. The rules, in one place:

- A destination is *not delivering* once its oldest waiting event is
  `not_delivering_ms` old (the Federation tab's word); the incident starts
  when that event was sent. A sibling *not answering* starts at the first
  check that found it so; *never worked* at Synapse's first failure.
- An incident ends once its destination has been fine for `settle_ms`; bad
  again before that, it goes on: a flapping destination is one incident.
- An incident that goes on unchanged is not changed: in an outage of thousands
  of destinations a check writes nothing but what moved.
- Only incidents of watched destinations (the file's homeservers and the
  `important` servers) are told, once each lasts `grace_ms`: one notice per
  homeserver and check lists every new one; one more lists the ended ones
  that were told. An incident that ended before its grace is kept, never told.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["not_delivering", "not_answering", "never_worked"]
KINDS: tuple[Kind, ...] = ("not_delivering", "not_answering", "never_worked")
KIND_WORDS: dict[str, str] = {
    "not_delivering": "not delivering",
    "not_answering": "not answering",
    "never_worked": "never worked",
}
Status = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Waiting:
    """A destination that lacks events: since when, in how many rooms, how many events."""

    since_ms: int
    rooms: int
    events: int


@dataclass(frozen=True)
class Observation:
    """One check of one homeserver."""

    homeserver: str
    at_ms: int
    waiting: Mapping[str, Waiting] = field(default_factory=dict)
    not_answering: Mapping[str, str] = field(default_factory=dict)  # sibling -> what failed
    never_worked: Mapping[str, int] = field(default_factory=dict)  # sibling -> first failure


@dataclass(frozen=True)
class Incident:
    homeserver: str
    destination: str
    kind: Kind
    started_ms: int
    last_bad_ms: int  # the last check that found it bad and changed what is known of it
    good_since_ms: int | None = None  # fine again since (not yet for `settle`)
    ended_ms: int | None = None
    rooms: int = 0  # the most rooms that waited at once
    events: int = 0  # the most events that waited at once
    alerted: bool = False
    detail: str = ""  # what the last failed check said
    id: int | None = None  # the store's, once written

    @property
    def key(self) -> tuple[str, Kind]:
        return self.destination, self.kind

    @property
    def open(self) -> bool:
        return self.ended_ms is None


@dataclass(frozen=True)
class Settings:
    grace_ms: int
    settle_ms: int
    not_delivering_ms: int = 30_000


@dataclass(frozen=True)
class Notice:
    """One message to one homeserver's administrators (and the webhook)."""

    homeserver: str
    status: Status
    incidents: tuple[Incident, ...]


@dataclass(frozen=True)
class Step:
    changed: list[Incident]  # opened (id None) or updated, ended ones included
    notices: list[Notice]


@dataclass(frozen=True)
class _Bad:
    started_ms: int
    rooms: int = 0
    events: int = 0
    detail: str = ""


def _bad(observation: Observation, settings: Settings) -> dict[tuple[str, Kind], _Bad]:
    """What this check found wrong, by (destination, kind)."""
    found: dict[tuple[str, Kind], _Bad] = {}
    for destination, waiting in observation.waiting.items():
        if observation.at_ms - waiting.since_ms >= settings.not_delivering_ms:
            found[(destination, "not_delivering")] = _Bad(
                waiting.since_ms, waiting.rooms, waiting.events
            )
    for sibling, error in observation.not_answering.items():
        found[(sibling, "not_answering")] = _Bad(observation.at_ms, detail=error)
    for sibling, first_failure in observation.never_worked.items():
        found[(sibling, "never_worked")] = _Bad(first_failure)
    return found


def advance(
    open_incidents: Iterable[Incident],
    observation: Observation,
    settings: Settings,
    watched: frozenset[str],
) -> Step:
    """The incidents of `observation.homeserver` after this check, and what to tell."""
    now = observation.at_ms
    bad = _bad(observation, settings)
    changed: list[Incident] = []
    firing: list[Incident] = []
    resolved: list[Incident] = []
    seen: set[tuple[str, Kind]] = set()
    for incident in open_incidents:
        seen.add(incident.key)
        found = bad.get(incident.key)
        if found is not None:
            after = dataclasses.replace(
                incident,
                good_since_ms=None,
                rooms=max(incident.rooms, found.rooms),
                events=max(incident.events, found.events),
                detail=found.detail or incident.detail,
            )
            if after != incident:  # a steady outage is not written again every check
                after = dataclasses.replace(after, last_bad_ms=now)
        else:
            good_since = incident.good_since_ms if incident.good_since_ms is not None else now
            ended = good_since if now - good_since >= settings.settle_ms else None
            after = dataclasses.replace(incident, good_since_ms=good_since, ended_ms=ended)
            if ended is not None and incident.alerted:
                resolved.append(after)
        after = _told(after, now, settings, watched, firing)
        if after != incident:
            changed.append(after)
    for key, found in bad.items():
        if key in seen:
            continue
        destination, kind = key
        opened = Incident(
            observation.homeserver,
            destination,
            kind,
            started_ms=found.started_ms,
            last_bad_ms=now,
            rooms=found.rooms,
            events=found.events,
            detail=found.detail,
        )
        changed.append(_told(opened, now, settings, watched, firing))
    told: list[tuple[Status, list[Incident]]] = [("firing", firing), ("resolved", resolved)]
    notices = [
        Notice(observation.homeserver, status, tuple(incidents))
        for status, incidents in told
        if incidents
    ]
    return Step(changed, notices)


def _told(
    incident: Incident,
    now: int,
    settings: Settings,
    watched: frozenset[str],
    firing: list[Incident],
) -> Incident:
    """The incident, marked told (and added to `firing`) when its grace is over now."""
    due = (
        incident.open
        and not incident.alerted
        and incident.good_since_ms is None
        and incident.destination in watched
        and now - incident.started_ms >= settings.grace_ms
    )
    if not due:
        return incident
    told = dataclasses.replace(incident, alerted=True)
    firing.append(told)
    return told
