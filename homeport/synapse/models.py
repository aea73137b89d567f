"""Typed answers of Synapse's admin API: what Homeport reads, parsed once at the edge.

Synapse's JSON stops here; everything above works with these frozen types.
Field names are Synapse's, so the admin API documentation explains them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def server_of(matrix_id: str | None) -> str:
    """The server part of a user ID (say, a room's creator); '' if unknown."""
    if not matrix_id or ":" not in matrix_id:
        return ""
    return matrix_id.split(":", 1)[1]


@dataclass(frozen=True)
class Destination:
    """A row of `GET /_synapse/admin/v1/federation/destinations`."""

    destination: str
    retry_last_ts: int  # the last failed attempt (ms); 0 when not failing
    retry_interval: int  # ms; 0 when not failing
    failure_ts: int | None  # the start of the current outage
    last_successful_stream_ordering: int | None  # None: no transaction ever succeeded

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> Destination:
        return cls(
            destination=str(row["destination"]),
            retry_last_ts=int(row.get("retry_last_ts") or 0),
            retry_interval=int(row.get("retry_interval") or 0),
            failure_ts=_int_or_none(row.get("failure_ts")),
            last_successful_stream_ordering=_int_or_none(
                row.get("last_successful_stream_ordering")
            ),
        )

    @property
    def backing_off(self) -> bool:
        """Synapse waits before it tries again: it sets a retry interval only while failing."""
        return self.retry_interval > 0

    @property
    def next_attempt_ms(self) -> int | None:
        """When Synapse tries again: the last failed attempt plus the retry interval."""
        if self.retry_last_ts and self.backing_off:
            return self.retry_last_ts + self.retry_interval
        return None

    @property
    def can_reset(self) -> bool:
        """Synapse accepts `reset_connection` only while it has retry timings to clear."""
        return bool(self.retry_last_ts)


@dataclass(frozen=True)
class Undelivered:
    """Events a destination lacks, from Synapse's catch-up tables (the Homeport module)."""

    destination: str
    rooms: int  # rooms holding events it has not received
    since_ms: int  # when the oldest of those events was sent
    events: int = 0  # events it has not received

    @classmethod
    def from_api(cls, destination: str, facts: Mapping[str, Any]) -> Undelivered:
        return cls(
            destination,
            int(facts.get("rooms", 0)),
            int(facts.get("since") or 0),
            int(facts.get("events") or 0),
        )

    def age_s(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.since_ms) / 1000)


@dataclass(frozen=True)
class DestinationPage:
    destinations: list[Destination]
    total: int
    next_token: int | None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> DestinationPage:
        return cls(
            destinations=[Destination.from_api(row) for row in body.get("destinations", [])],
            total=int(body.get("total", 0)),
            next_token=_int_or_none(body.get("next_token")),
        )


@dataclass(frozen=True)
class DestinationRoom:
    room_id: str
    stream_ordering: int | None


@dataclass(frozen=True)
class DestinationRoomsPage:
    """`GET .../federation/destinations/<d>/rooms`: the rooms that federate with `d`."""

    rooms: list[DestinationRoom]
    total: int
    next_token: int | None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> DestinationRoomsPage:
        return cls(
            rooms=[
                DestinationRoom(str(r["room_id"]), _int_or_none(r.get("stream_ordering")))
                for r in body.get("rooms", [])
            ],
            total=int(body.get("total", 0)),
            next_token=_int_or_none(body.get("next_token")),
        )


@dataclass(frozen=True)
class Room:
    """A room as `GET /_synapse/admin/v1/rooms[/<id>]` describes it."""

    room_id: str
    name: str | None
    canonical_alias: str | None
    joined_members: int
    joined_local_members: int
    federatable: bool
    public: bool  # published in the room directory
    room_type: str | None
    creator: str | None  # the sender of the m.room.create event

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> Room:
        return cls(
            room_id=str(row["room_id"]),
            name=_str_or_none(row.get("name")),
            canonical_alias=_str_or_none(row.get("canonical_alias")),
            joined_members=int(row.get("joined_members") or 0),
            joined_local_members=int(row.get("joined_local_members") or 0),
            federatable=bool(row.get("federatable")),
            public=bool(row.get("public")),
            room_type=_str_or_none(row.get("room_type")),
            creator=_str_or_none(row.get("creator")),
        )

    @classmethod
    def unknown(cls, room_id: str) -> Room:
        """A room Synapse no longer describes (purged since it was listed)."""
        return cls(room_id, None, None, 0, 0, False, False, None, None)

    @property
    def remote_members(self) -> int:
        return max(0, self.joined_members - self.joined_local_members)

    @property
    def is_space(self) -> bool:
        return self.room_type == "m.space"

    @property
    def creator_server(self) -> str:
        """Which server created the room (room IDs of version 12 carry no server name)."""
        return server_of(self.creator)


@dataclass(frozen=True)
class RoomPage:
    rooms: list[Room]
    total: int
    next_batch: int | None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> RoomPage:
        return cls(
            rooms=[Room.from_api(row) for row in body.get("rooms", [])],
            total=int(body.get("total_rooms", 0)),
            next_batch=_int_or_none(body.get("next_batch")),
        )


@dataclass(frozen=True)
class AuditMembership:
    """What the Homeport module did when asked to add or remove the audit bot."""

    room_id: str
    already: bool  # it was already in (added) or already out (removed)
    inviter: str | None = None  # whose name the invite went out in, when one was needed

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> AuditMembership:
        return cls(
            room_id=str(body["room_id"]),
            already=bool(body.get("already")),
            inviter=_str_or_none(body.get("inviter")),
        )


@dataclass(frozen=True)
class InternalRoom:
    """A room of a homeserver's internal spaces, as the Homeport module reports it."""

    room_id: str
    known: bool  # the homeserver is in it; else nothing more is known of it
    federates: bool
    exposed: bool  # Synapse describes it to any server asking (open join rule or history)
    space: bool
    name: str | None
    parents: tuple[str, ...]  # the internal spaces that hold it
    remote_members: tuple[str, ...]  # other servers' users joined, invited or knocking
    outside_parents: tuple[str, ...]  # spaces that federate, outside the internal ones

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> InternalRoom:
        return cls(
            room_id=str(row["room_id"]),
            known=bool(row.get("known")),
            federates=bool(row.get("federates", True)),
            exposed=bool(row.get("exposed")),
            space=bool(row.get("space")),
            name=_str_or_none(row.get("name")),
            parents=tuple(str(p) for p in row.get("parents") or ()),
            remote_members=tuple(str(u) for u in row.get("remote_members") or ()),
            outside_parents=tuple(str(p) for p in row.get("outside_parents") or ()),
        )


@dataclass(frozen=True)
class InternalSpacesReport:
    """`GET /_homeport/v1/internal_spaces`: each internal space of homeport.yaml with the
    room it names (None: none yet), and every room they hold."""

    spaces: dict[str, str | None]
    rooms: list[InternalRoom]

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> InternalSpacesReport:
        return cls(
            spaces={
                str(s["reference"]): _str_or_none(s.get("room_id")) for s in body.get("spaces", [])
            },
            rooms=[InternalRoom.from_api(r) for r in body.get("rooms", [])],
        )


@dataclass(frozen=True)
class MixedRoom:
    """A room of this server's users that holds users of servers it does not federate with."""

    room_id: str
    name: str | None
    servers: list[str]  # the servers outside the whitelist, with joined members
    members: int  # how many of their users are joined

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> MixedRoom:
        return cls(
            str(body["room_id"]),
            _str_or_none(body.get("name")),
            [str(s) for s in body.get("servers", [])],
            int(body.get("members", 0)),
        )


@dataclass(frozen=True)
class MixedRoomsReport:
    """`GET /_homeport/v1/mixed_rooms`: rooms mixed with servers outside the whitelist (the
    first 500, `total` in all), and rooms whose join Synapse has not completed."""

    rooms: list[MixedRoom]
    total: int
    unfinished: list[tuple[str, str | None]]  # (room ID, name)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> MixedRoomsReport:
        return cls(
            [MixedRoom.from_api(r) for r in body.get("rooms", [])],
            int(body.get("total", 0)),
            [(str(p["room_id"]), _str_or_none(p.get("name"))) for p in body.get("partial", [])],
        )
