"""The conference service's pure core: whose token, which room, what power, which token."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
import pytest

from homeport.conference import tokens
from homeport.conference.decide import (
    Refused,
    allowed_server,
    facts_of_state,
    user_of_userinfo,
    verify_user_in_room_answer,
)
from homeport.conference.limits import CallerLimits, TokenCache
from homeport.conference.resolve import Target, resolve
from tests.conference.prosody import room_id_of

ROOM = "!abc:internal.example"
SECRET = b"a secret of at least thirty-two bytes"


@pytest.mark.parametrize(
    ("server", "body", "user"),
    [
        ("internal.example", {"sub": "@alice:internal.example"}, "@alice:internal.example"),
        ("localhost:8448", {"sub": "@bob:localhost:8448"}, "@bob:localhost:8448"),
        # A token presented under another server's name: that server cannot vouch.
        ("external.example", {"sub": "@alice:internal.example"}, None),
        # A suffix is not a server: evil-internal.example is not internal.example.
        ("internal.example", {"sub": "@mallory:evil-internal.example"}, None),
        ("localhost:8448", {"sub": "@eve:localhost:84488"}, None),
        ("internal.example", {"sub": 42}, None),
        ("internal.example", {}, None),
        ("internal.example", ["@alice:internal.example"], None),
    ],
)
def test_a_server_vouches_only_for_its_own_users(server: str, body: Any, user: str | None) -> None:
    if user is None:
        with pytest.raises(Refused):
            user_of_userinfo(server, body)
    else:
        assert user_of_userinfo(server, body) == user


def test_only_allowed_servers_are_asked() -> None:
    allowed_server("internal.example", {"internal.example", "external.example"})
    with pytest.raises(Refused, match=r"partner\.example"):
        allowed_server("partner.example", {"internal.example"})


def _state(power: dict[str, Any] | None, member: str | None, version: str = "10") -> list[Any]:
    events: list[dict[str, Any]] = [
        {
            "type": "m.room.create",
            "state_key": "",
            "sender": "@creator:internal.example",
            "content": {"room_version": version},
        }
    ]
    if power is not None:
        events.append({"type": "m.room.power_levels", "state_key": "", "content": power})
    if member is not None:
        events.append(
            {
                "type": "m.room.member",
                "state_key": "@alice:external.example",
                "content": {"membership": member, "displayname": "Alice"},
            }
        )
    return events


@pytest.mark.parametrize(
    ("why", "power", "member", "version", "joined", "level", "moderator"),
    [
        (
            "default state_default is 50",
            {"users": {"@alice:external.example": 50}},
            "join",
            "10",
            True,
            50,
            True,
        ),
        (
            "below state_default",
            {"users": {"@alice:external.example": 49}},
            "join",
            "10",
            True,
            49,
            False,
        ),
        (
            "users_default applies",
            {"users_default": 10, "state_default": 10},
            "join",
            "10",
            True,
            10,
            True,
        ),
        (
            "raised state_default",
            {"users": {"@alice:external.example": 50}, "state_default": 75},
            "join",
            "10",
            True,
            50,
            False,
        ),
        ("invited is not a member", {}, "invite", "10", False, 0, False),
        ("left is not a member", {}, "leave", "10", False, 0, False),
        ("never there", {}, None, "10", False, 0, False),
        ("no power levels at all", None, "join", "10", True, 0, False),
    ],
)
def test_membership_and_moderation_from_room_state(
    why: str,
    power: dict[str, Any] | None,
    member: str | None,
    version: str,
    joined: bool,
    level: int,
    moderator: bool,
) -> None:
    facts = facts_of_state(ROOM, "@alice:external.example", _state(power, member, version))
    assert facts.joined is joined, why
    assert facts.level_of("@alice:external.example") == level, why
    assert facts.moderator("@alice:external.example") is moderator, why


def test_room_version_12_creators_outrank_every_level() -> None:
    facts = facts_of_state(ROOM, "@creator:internal.example", _state({}, None, "12"))
    assert facts.moderator("@creator:internal.example")
    assert not facts.moderator("@alice:external.example")


def test_answers_have_the_reference_service_s_shape() -> None:
    assert verify_user_in_room_answer(None, None) == {
        "results": {"user": False, "room_membership": None},
        "user_id": None,
        "power_levels": None,
    }
    outsider = facts_of_state(ROOM, "@alice:external.example", _state({}, "leave"))
    assert verify_user_in_room_answer("@alice:external.example", outsider) == {
        "results": {"user": True, "room_membership": False},
        "user_id": "@alice:external.example",
        "power_levels": None,
    }
    power = {"users": {"@alice:external.example": 60}, "ban": 50}
    member = facts_of_state(ROOM, "@alice:external.example", _state(power, "join"))
    answer = verify_user_in_room_answer("@alice:external.example", member)
    assert answer["results"] == {"user": True, "room_membership": True}
    # The room's levels without their `users` map (as the reference service sends).
    assert answer["power_levels"] == {"room": {"ban": 50, "state_default": 50}, "user": 60}


@pytest.mark.parametrize(
    "room_id",
    ["!abc:internal.example", "!OGEhHVWSdvArJzumhm:matrix.org", "!x", "!" + "é" * 7],
)
def test_jitsi_room_names_are_element_s_and_decode_in_either_case(room_id: str) -> None:
    name = tokens.jitsi_room_name(room_id)
    assert "=" not in name
    assert name == base64.b32encode(room_id.encode()).decode().rstrip("=")
    assert room_id_of(name) == room_id
    assert room_id_of(name.lower()) == room_id


def test_element_call_names_match_lk_jwt_service() -> None:
    # lk-jwt-service: unpadded standard base64 of SHA-256 over json.Marshal([]string{...}).
    def expected(*values: str) -> str:
        raw = json.dumps(list(values), separators=(",", ":")).encode()
        return base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")

    assert tokens.livekit_room_alias(ROOM, "m.call#ROOM") == expected(ROOM, "m.call#ROOM")
    assert tokens.livekit_identity("@a:b", "DEV", "m1") == expected("@a:b", "DEV", "m1")


def test_jitsi_token_claims_and_signature() -> None:
    person = tokens.Person("@alice:external.example", "Alice", "mxc://x/y")
    claims = tokens.jitsi_claims(
        person,
        ROOM,
        app_id="homeport",
        domain="meet.example.org",
        moderator=True,
        now=1000,
        ttl_seconds=60,
    )
    token = tokens.sign(claims, SECRET)
    decoded = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience="homeport",
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert decoded["iss"] == "homeport"
    assert decoded["sub"] == "meet.example.org"
    assert decoded["room"] == tokens.jitsi_room_name(ROOM)
    assert decoded["context"]["user"] == {
        "id": "@alice:external.example",
        "name": "Alice",
        "avatar": "mxc://x/y",
    }
    assert decoded["moderator"] is True
    assert decoded["exp"] == 1060
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token, b"another secret of thirty-two bytes!", algorithms=["HS256"], audience="homeport"
        )


@pytest.mark.parametrize(("full", "create"), [(True, True), (False, False)])
def test_livekit_grants(full: bool, create: bool) -> None:
    claims = tokens.livekit_claims(
        "id",
        tokens.Person("@a:b", "A"),
        "room",
        api_key="key",
        full_access=full,
        now=0,
        ttl_seconds=3600,
    )
    assert claims["iss"] == "key"
    assert claims["video"]["room"] == "room"
    assert claims["video"]["roomJoin"] is True
    assert claims["video"]["canPublish"] is True
    assert claims["video"]["roomCreate"] is create


class Lookups:
    def __init__(self, well_known: dict[str, str], srv: dict[str, tuple[str, int]]) -> None:
        self.well_known_answers, self.srv_answers = well_known, srv
        self.asked: list[str] = []

    async def well_known(self, name: str) -> str | None:
        self.asked.append(f"well-known {name}")
        return self.well_known_answers.get(name)

    async def srv(self, name: str) -> tuple[str, int] | None:
        self.asked.append(f"srv {name}")
        return self.srv_answers.get(name)


@pytest.mark.parametrize(
    ("why", "name", "well_known", "srv", "target"),
    [
        (
            "explicit port: no lookups",
            "hs.example:8448",
            {},
            {},
            Target("hs.example", 8448, "hs.example:8448", "hs.example"),
        ),
        ("IP literal", "10.0.0.1", {}, {}, Target("10.0.0.1", 8448, "10.0.0.1", "10.0.0.1")),
        (
            "IPv6 literal with port",
            "[::1]:8449",
            {},
            {},
            Target("[::1]", 8449, "[::1]:8449", "::1"),
        ),
        (
            "well-known with a port",
            "example.org",
            {"example.org": "matrix.example.org:443"},
            {},
            Target("matrix.example.org", 443, "matrix.example.org:443", "matrix.example.org"),
        ),
        (
            "well-known, then SRV of the delegated name",
            "example.org",
            {"example.org": "matrix.example.org"},
            {"_matrix-fed._tcp.matrix.example.org": ("fed.example.net", 8443)},
            Target("fed.example.net", 8443, "matrix.example.org", "matrix.example.org"),
        ),
        (
            "well-known without port or SRV",
            "example.org",
            {"example.org": "matrix.example.org"},
            {},
            Target("matrix.example.org", 8448, "matrix.example.org", "matrix.example.org"),
        ),
        (
            "no well-known: SRV",
            "example.org",
            {},
            {"_matrix-fed._tcp.example.org": ("hs.example.org", 443)},
            Target("hs.example.org", 443, "example.org", "example.org"),
        ),
        (
            "the older SRV name",
            "example.org",
            {},
            {"_matrix._tcp.example.org": ("old.example.org", 8449)},
            Target("old.example.org", 8449, "example.org", "example.org"),
        ),
        (
            "nothing: port 8448",
            "example.org",
            {},
            {},
            Target("example.org", 8448, "example.org", "example.org"),
        ),
        (
            "malformed delegation counts as none",
            "example.org",
            {"example.org": "a:b:c:x"},
            {},
            Target("example.org", 8448, "example.org", "example.org"),
        ),
    ],
)
async def test_server_names_resolve_by_the_spec(
    why: str,
    name: str,
    well_known: dict[str, str],
    srv: dict[str, tuple[str, int]],
    target: Target,
) -> None:
    lookups = Lookups(well_known, srv)
    assert await resolve(name, lookups.well_known, lookups.srv) == target, why
    if ":" in name or name[0].isdigit():
        assert lookups.asked == [], "an explicit port or IP needs no lookup"


def test_checked_tokens_are_believed_until_their_stated_expiry_and_at_most_five_minutes() -> None:
    cache = TokenCache(entries=2, seconds=300)
    cache.put("hs", "t1", "@a:hs", now=0, expires_in=None)
    cache.put("hs", "t2", "@b:hs", now=0, expires_in=10)
    assert cache.get("hs", "t1", now=299) == "@a:hs"
    assert cache.get("hs", "t1", now=300) is None
    assert cache.get("hs", "t2", now=9) == "@b:hs"
    assert cache.get("hs", "t2", now=10) is None
    # A token checked with one server says nothing about another.
    cache.put("hs", "t3", "@c:hs", now=0, expires_in=None)
    assert cache.get("other", "t3", now=1) is None
    # Bounded: the least recently used goes first.
    cache.put("hs", "t4", "@d:hs", now=0, expires_in=None)
    cache.put("hs", "t5", "@e:hs", now=0, expires_in=None)
    assert len(cache) == 2
    assert cache.get("hs", "t3", now=1) is None
    cache.put("hs", "gone", "@f:hs", now=0, expires_in=0)
    assert cache.get("hs", "gone", now=0) is None


def test_callers_are_limited_each_on_their_own_and_told_when_to_come_back() -> None:
    limits = CallerLimits(rate=2, burst=3, tracked=2)
    assert [limits.take("10.0.0.1", 0) for _ in range(3)] == [0, 0, 0]
    assert limits.take("10.0.0.1", 0) == pytest.approx(0.5)
    assert limits.take("10.0.0.2", 0) == 0  # another caller is not affected
    assert limits.take("10.0.0.1", 0.5) == 0  # refilled at 2 per second
    # Tracked: .2, then .1 (used last). A third caller makes it forget .2, the
    # least recently used, and keep .1, whose bucket is still empty.
    limits.take("10.0.0.3", 0.5)
    assert limits.take("10.0.0.1", 0.5) > 0
    assert [limits.take("10.0.0.2", 0.5) for _ in range(3)] == [0, 0, 0]  # a fresh burst
