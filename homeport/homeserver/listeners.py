"""What a homeserver's HTTP listeners serve, shared by the main process and its workers."""

from __future__ import annotations

from homeport.capability import SynapsePieces

BASE_RESOURCES = ("client", "federation")


def listener_resources(pieces: SynapsePieces) -> list[str]:
    """Client and federation, and what the capabilities name (`openid` for the conference
    service)."""
    return list(dict.fromkeys([*BASE_RESOURCES, *pieces.resources]))
