"""The typed rows the Federation tab shows, built from Synapse's typed answers. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from homeport.admin.present import DestinationStatus, When, destination_status, when
from homeport.admin.timeline import IncidentLine, incident_line
from homeport.alerts.incidents import Incident
from homeport.synapse.models import Destination, Undelivered


@dataclass(frozen=True)
class DestinationRow:
    """A federation destination as the Federation tab and the destination page show it."""

    destination: str
    status: DestinationStatus
    first_failed: When | None
    last_failed: When | None
    next_attempt: When | None
    next_attempt_due: bool  # the backoff is over: the next event or catch-up round retries
    undelivered_since: When | None  # the oldest event it lacks
    waiting_rooms: int  # rooms holding events it lacks
    rooms: int
    stream_ordering: int | None
    can_reset: bool
    last_incident: IncidentLine | None = None


def destination_row(
    destination: Destination,
    rooms: int,
    undelivered: Undelivered | None,
    now_ms: int,
    incident: Incident | None = None,
) -> DestinationRow:
    next_attempt = destination.next_attempt_ms
    return DestinationRow(
        destination=destination.destination,
        status=destination_status(destination, undelivered, now_ms),
        first_failed=when(destination.failure_ts, now_ms),
        last_failed=when(destination.retry_last_ts, now_ms),
        next_attempt=when(next_attempt, now_ms),
        next_attempt_due=next_attempt is not None and next_attempt <= now_ms,
        undelivered_since=when(undelivered.since_ms, now_ms) if undelivered else None,
        waiting_rooms=undelivered.rooms if undelivered else 0,
        rooms=rooms,
        stream_ordering=destination.last_successful_stream_ordering,
        can_reset=destination.can_reset,
        last_incident=incident_line(incident, now_ms) if incident is not None else None,
    )
