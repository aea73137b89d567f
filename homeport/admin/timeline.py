"""A destination's last 30 days of incidents as a picture, drawn on the server. Pure.

The destination page shows it as inline SVG: one bar per incident along a
30-day axis (at least 2 units wide, so a one-minute incident still shows),
a tick per week, and below it the incidents in a table: when, how long, how
much waited, whether it was told, and whether an administrator reset the
connection during it (from the website's own record of actions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from homeport.admin.actions import Action
from homeport.admin.present import When, when
from homeport.alerts.incidents import KIND_WORDS, Incident
from homeport.policy.backoff import spoken

DAY_MS = 86_400_000
WINDOW_MS = 30 * DAY_MS
WIDTH = 1000.0
SHORTEST = 2.0  # the narrowest bar, in the picture's units


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    kind: str
    label: str  # the bar's <title>: what, when, how long


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class IncidentLine:
    what: str
    started: When | None
    ended: When | None  # None while it lasts
    lasted: str
    waited: str  # "12 events in 3 rooms", or ""
    told: bool
    reset_by: str | None  # who reset the connection during it, if anyone did

    @property
    def open(self) -> bool:
        return self.ended is None


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    ticks: list[Tick]
    lines: list[IncidentLine]  # newest first
    width: float = WIDTH

    @property
    def summary(self) -> str:
        """What the picture says, for people who cannot see it."""
        count = len(self.lines)
        if count == 0:
            return "No incident in the last 30 days."
        ongoing = sum(1 for line in self.lines if line.ended is None)
        total = "1 incident" if count == 1 else f"{count} incidents"
        return f"{total} in the last 30 days" + (f", {ongoing} ongoing." if ongoing else ".")


def incident_line(incident: Incident, now_ms: int, reset_by: str | None = None) -> IncidentLine:
    """One incident in words: the table's line, the Federation tab's last-incident cell."""
    end = incident.ended_ms if incident.ended_ms is not None else now_ms
    waited = ""
    if incident.kind == "not_delivering":
        waited = f"{incident.events} events in {incident.rooms} rooms"
    return IncidentLine(
        what=KIND_WORDS.get(incident.kind, incident.kind),
        started=when(incident.started_ms, now_ms),
        ended=when(incident.ended_ms, now_ms) if incident.ended_ms is not None else None,
        lasted=spoken(max(0, end - incident.started_ms) / 1000),
        waited=waited,
        told=incident.alerted,
        reset_by=reset_by,
    )


def _x(ms: int, start: int, now: int) -> float:
    return max(0.0, min(WIDTH, (ms - start) / (now - start) * WIDTH))


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%d %b")


def _reset_during(incident: Incident, actions: Sequence[Action], now: int) -> str | None:
    end = incident.ended_ms if incident.ended_ms is not None else now
    for action in actions:
        if action.action == "reset_connection" and incident.started_ms <= action.ts <= end:
            return action.user_id
    return None


def timeline(incidents: Sequence[Incident], actions: Sequence[Action], now_ms: int) -> Timeline:
    """The picture and the table of `incidents` (a destination's, on one homeserver) over
    the 30 days before `now_ms`."""
    start = now_ms - WINDOW_MS
    bars: list[Bar] = []
    lines: list[IncidentLine] = []
    for incident in sorted(incidents, key=lambda i: (i.started_ms, i.id or 0)):
        end = incident.ended_ms if incident.ended_ms is not None else now_ms
        if end < start:
            continue
        x = _x(incident.started_ms, start, now_ms)
        width = max(SHORTEST, _x(end, start, now_ms) - x)
        x = min(x, WIDTH - width)
        what = KIND_WORDS.get(incident.kind, incident.kind)
        lasted = spoken(max(0, end - incident.started_ms) / 1000)
        ongoing = " (ongoing)" if incident.ended_ms is None else ""
        label = f"{what} from {_day(incident.started_ms)}, {lasted}{ongoing}"
        bars.append(Bar(round(x, 1), round(width, 1), incident.kind, label))
        lines.append(incident_line(incident, now_ms, _reset_during(incident, actions, now_ms)))
    ticks = [
        Tick(round(_x(now_ms - days * DAY_MS, start, now_ms), 1), _day(now_ms - days * DAY_MS))
        for days in (28, 21, 14, 7, 0)
    ]
    return Timeline(bars, ticks, list(reversed(lines)))
