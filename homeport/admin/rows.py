"""The typed rows the website's templates show, built from Synapse's typed answers. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from homeport.admin.present import DestinationStatus, When, destination_status, when
from homeport.synapse.models import Destination, Room, Undelivered


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


def destination_row(
    destination: Destination, rooms: int, undelivered: Undelivered | None, now_ms: int
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
    )


@dataclass(frozen=True)
class RoomRow:
    """A room as the Rooms page and a destination's room list show it."""

    room_id: str
    name: str | None
    alias: str | None
    creator_server: str  # '' when Synapse does not know the creator
    federated: bool
    published: bool
    space: bool
    local: int
    remote: int


def room_row(room: Room) -> RoomRow:
    return RoomRow(
        room_id=room.room_id,
        name=room.name,
        alias=room.canonical_alias,
        creator_server=room.creator_server,
        federated=room.federatable,
        published=room.public,
        space=room.is_space,
        local=room.joined_local_members,
        remote=room.remote_members,
    )


def unknown_room_row(room_id: str) -> RoomRow:
    """A room Synapse no longer describes (purged since it was listed)."""
    return RoomRow(room_id, None, None, "", False, False, False, 0, 0)
