"""Tokens the conference service signs, as pure functions of who, where and when.

Jitsi's token authentication takes an HS256 JWT whose `room` is the
conference name; Element names the conference of a Matrix room by the
unpadded base32 of its room ID (RFC 4648, upper case; Prosody's decoder takes
either case, as tests/conference/prosody.py shows). LiveKit takes an HS256
JWT whose `video` grant names the room; Element Call's authoriser
(lk-jwt-service) names it by the unpadded base64 of SHA-256 over the JSON
array `[room_id, slot_id]`, and identifies a member by the same hash over
`[user_id, device_id, member_id]`; its legacy endpoint uses the slot
`m.call#ROOM` and the identity `user_id:device_id`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt

LEGACY_SLOT = "m.call#ROOM"


def jitsi_room_name(room_id: str) -> str:
    """The Jitsi conference of a Matrix room, as Element names it."""
    return base64.b32encode(room_id.encode()).decode().rstrip("=")


def _hash_of(values: list[str]) -> str:
    digest = hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).digest()
    return base64.b64encode(digest).decode().rstrip("=")


def livekit_room_alias(room_id: str, slot_id: str) -> str:
    return _hash_of([room_id, slot_id])


def livekit_identity(user_id: str, device_id: str, member_id: str) -> str:
    return _hash_of([user_id, device_id, member_id])


@dataclass(frozen=True)
class Person:
    """Who a token is for, as their homeserver and the room describe them."""

    user_id: str
    name: str
    avatar: str = ""


def jitsi_claims(
    person: Person,
    room_id: str,
    *,
    app_id: str,
    domain: str,
    moderator: bool,
    now: int,
    ttl_seconds: int,
) -> dict[str, Any]:
    """Claims for Jitsi's token authentication (`aud`/`iss` = app_id, `sub` = domain)."""
    return {
        "aud": app_id,
        "iss": app_id,
        "sub": domain,
        "room": jitsi_room_name(room_id),
        "context": {
            "user": {"id": person.user_id, "name": person.name, "avatar": person.avatar},
            "matrix": {"room_id": room_id},
        },
        "moderator": moderator,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }


def livekit_claims(
    identity: str,
    person: Person,
    room: str,
    *,
    api_key: str,
    full_access: bool,
    now: int,
    ttl_seconds: int,
) -> dict[str, Any]:
    """A LiveKit access token's claims: join the room; create it only with full access.

    Everyone admitted may publish: a call where only one homeserver's users
    can speak is not what two federating homeservers are for.
    """
    return {
        "iss": api_key,
        "sub": identity,
        "name": person.name or person.user_id,
        "metadata": json.dumps({"user_id": person.user_id}),
        "video": {
            "room": room,
            "roomJoin": True,
            "roomCreate": full_access,
            "canPublish": True,
            "canSubscribe": True,
            "canPublishData": True,
            "canUpdateOwnMetadata": True,
        },
        "nbf": now,
        "exp": now + ttl_seconds,
    }


def sign(claims: dict[str, Any], secret: bytes) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")
