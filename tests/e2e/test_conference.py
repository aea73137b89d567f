"""The conference service on the starter (Homeport's own rate limits): one vouching service.

Users of internal and external get OpenID tokens from their own homeserver
(as Element does) and present them to the service the way Jitsi's Prosody
module and Element Call do; rooms live on either homeserver.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest

from homeport.conference import tokens
from homeport.trust import client_ssl_context
from tests.conference.prosody import room_id_of
from tests.harness import (
    RunningDeployment,
    edit_yaml,
    homeport,
    init_deployment,
    run_sync,
    running_deployment,
    status_json,
)

pytestmark = pytest.mark.e2e

LIVEKIT_URL = "wss://livekit.example.org"


@pytest.fixture(scope="module")
def conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    config = init_deployment(tmp_path_factory.mktemp("conference"))

    def edit(data: Any) -> None:
        data["conference"]["livekit"] = {"url": LIVEKIT_URL, "key": "homeport"}
        # The starter's internal keeps every room to itself; here it shares one.
        data["homeservers"]["internal"]["policy"]["rooms"]["federation"] = "creator_choice"

    edit_yaml(config, edit)
    with running_deployment(config) as running:
        _wait_for_service(running)
        yield running


def _wait_for_service(running: RunningDeployment) -> None:
    deployment = running.deployment
    assert deployment.conference is not None
    deadline = time.monotonic() + 60
    with httpx.Client(verify=client_ssl_context(deployment), timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{deployment.conference.url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    raise AssertionError(f"the conference service never answered:\n{running.output()}")


@dataclass
class Person:
    user_id: str
    server_name: str
    token: str  # client access token

    def openid(self, http: httpx.Client, base_url: str) -> str:
        response = http.post(
            f"{base_url}/_matrix/client/v3/user/{quote(self.user_id)}/openid/request_token",
            headers={"Authorization": f"Bearer {self.token}"},
            json={},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@dataclass
class World:
    running: RunningDeployment
    http: httpx.Client
    url: str
    auth: dict[str, str]
    alice: Person  # internal, created the internal room
    bob: Person  # external, created the external room, joined the internal one
    carol: Person  # internal, in no room
    internal_room: str
    external_room: str

    def base(self, person: Person) -> str:
        hs = next(
            h
            for h in self.running.deployment.homeservers.values()
            if h.server_name == person.server_name
        )
        return hs.base_url

    def openid(self, person: Person) -> str:
        return person.openid(self.http, self.base(person))

    def post(self, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.http.post(f"{self.url}{path}", json=body, headers=headers)


def _person(running: RunningDeployment, name: str) -> Person:
    user_id, token, _ = run_sync(running.new_session(name))
    return Person(user_id, running.deployment.homeservers[name].server_name, token)


def _room(
    world_http: httpx.Client, base: str, owner: Person, guests: list[tuple[str, Person]]
) -> str:
    created = world_http.post(
        f"{base}/_matrix/client/v3/createRoom",
        headers={"Authorization": f"Bearer {owner.token}"},
        json={"preset": "public_chat", "creation_content": {"m.federate": True}},
    )
    assert created.status_code == 200, created.text
    room_id = str(created.json()["room_id"])
    for guest_base, guest in guests:
        joined = world_http.post(
            f"{guest_base}/_matrix/client/v3/join/{quote(room_id)}",
            params={"server_name": owner.server_name},
            headers={"Authorization": f"Bearer {guest.token}"},
            json={},
        )
        assert joined.status_code == 200, joined.text
    return room_id


@pytest.fixture(scope="module")
def world(conf: RunningDeployment) -> Iterator[World]:
    deployment = conf.deployment
    assert deployment.conference is not None
    status = status_json(conf.config_path)["conference"]
    auth_file = status["auth_token_file"]
    auth = {"Authorization": f"Bearer {Path(auth_file).read_text().strip()}"}
    internal = deployment.homeservers["internal"].base_url
    external = deployment.homeservers["external"].base_url
    with httpx.Client(verify=client_ssl_context(deployment), timeout=30) as http:
        alice, bob = _person(conf, "internal"), _person(conf, "external")
        carol = _person(conf, "internal")
        internal_room = _room(http, internal, alice, [(external, bob)])
        external_room = _room(http, external, bob, [(internal, alice)])
        yield World(
            conf,
            http,
            deployment.conference.url,
            auth,
            alice,
            bob,
            carol,
            internal_room,
            external_room,
        )


def _in_room(world: World, person: Person, room: str, **headers: str) -> httpx.Response:
    body = {
        "token": world.openid(person),
        "matrix_server_name": person.server_name,
        "room_id": room,
    }
    return world.post("/verify/user_in_room", body, **(headers or world.auth))


def test_prosody_s_questions_about_users_of_both_homeservers_in_rooms_on_either(
    world: World,
) -> None:
    for person in (world.alice, world.bob):
        token = world.openid(person)
        answer = world.post(
            "/verify/user",
            {"token": token, "matrix_server_name": person.server_name},
            **world.auth,
        )
        assert answer.status_code == 200
        assert answer.json() == {"results": {"user": True}, "user_id": person.user_id}
    # bob (external) in a room of internal, alice (internal) in a room of external.
    for person, room in ((world.bob, world.internal_room), (world.alice, world.external_room)):
        answer = _in_room(world, person, room).json()
        assert answer["results"] == {"user": True, "room_membership": True}, answer
        assert answer["user_id"] == person.user_id
        assert answer["power_levels"]["user"] < answer["power_levels"]["room"]["state_default"]
    # The creator is a moderator in Prosody's reading: level >= state_default.
    creator = _in_room(world, world.alice, world.internal_room).json()["power_levels"]
    assert creator["user"] >= creator["room"]["state_default"]
    assert "users" not in creator["room"]
    outsider = _in_room(world, world.carol, world.internal_room).json()
    assert outsider == {
        "results": {"user": True, "room_membership": False},
        "user_id": world.carol.user_id,
        "power_levels": None,
    }


def test_a_token_is_believed_only_from_its_own_homeserver_and_only_by_a_caller_with_the_token(
    world: World,
) -> None:
    token = world.openid(world.alice)  # issued by internal
    under_external = world.post(
        "/verify/user", {"token": token, "matrix_server_name": world.bob.server_name}, **world.auth
    )
    assert under_external.status_code == 200
    assert under_external.json() == {"results": {"user": False}, "user_id": None}
    unknown = world.post(
        "/verify/user",
        {"token": token, "matrix_server_name": "partner.example.org"},
        **world.auth,
    )
    assert unknown.json() == {"results": {"user": False}, "user_id": None}
    forged = world.post(
        "/verify/user",
        {"token": "not-a-token", "matrix_server_name": world.alice.server_name},
        **world.auth,
    )
    assert forged.json() == {"results": {"user": False}, "user_id": None}
    body = {"token": token, "matrix_server_name": world.alice.server_name}
    assert world.post("/verify/user", body).status_code == 403
    assert world.post("/verify/user", body, Authorization="Bearer wrong").status_code == 403
    missing = world.post("/verify/user", {"matrix_server_name": "x"}, **world.auth)
    assert missing.status_code == 400
    assert "token not found" in missing.text
    # Older Element leaves the server name out: the homeserver that knows the token answers.
    unnamed = world.post("/verify/user", {"token": world.openid(world.bob)}, **world.auth)
    assert unnamed.json() == {"results": {"user": True}, "user_id": world.bob.user_id}


def test_jitsi_tokens_for_members_signed_with_the_app_secret(world: World) -> None:
    deployment = world.running.deployment
    assert deployment.conference is not None
    assert deployment.conference.jitsi is not None
    status = status_json(world.running.config_path)["conference"]
    secret = Path(status["jitsi_app_secret_file"]).read_bytes().strip()

    def ask(person: Person) -> httpx.Response:
        return world.post(
            "/jitsi/token",
            {
                "token": world.openid(person),
                "matrix_server_name": person.server_name,
                "room_id": world.internal_room,
            },
        )

    for person, moderator in ((world.alice, True), (world.bob, False)):
        answer = ask(person)
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == "*"
        body = answer.json()
        claims = jwt.decode(body["token"], secret, algorithms=["HS256"], audience="homeport")
        assert claims["iss"] == "homeport"
        assert claims["sub"] == deployment.conference.jitsi.domain
        assert claims["room"] == tokens.jitsi_room_name(world.internal_room) == body["room"]
        assert room_id_of(claims["room"].lower()) == world.internal_room
        assert claims["context"]["user"]["id"] == person.user_id
        assert claims["moderator"] is moderator
        assert 3500 <= claims["exp"] - time.time() <= 3600
    refused = ask(world.carol)
    assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN")
    nonsense = world.post(
        "/jitsi/token",
        {
            "token": world.openid(world.alice),
            "matrix_server_name": world.alice.server_name,
            "room_id": "general",
        },
    )
    assert (nonsense.status_code, nonsense.json()["errcode"]) == (400, "M_INVALID_PARAM")
    well_known = world.http.get(f"{world.url}/.well-known/element/jitsi")
    assert well_known.json() == {"auth": "openidtoken-jwt"}
    assert json.loads(Path(status["jitsi_well_known_file"]).read_text()) == well_known.json()


def test_element_call_tokens_for_members_of_either_homeserver(world: World) -> None:
    status = status_json(world.running.config_path)["conference"]
    secret = Path(status["livekit_secret_file"]).read_bytes().strip()
    slot = "m.call#ROOM"
    for person in (world.alice, world.bob):
        body = {
            "room_id": world.internal_room,
            "slot_id": slot,
            "openid_token": {
                "access_token": world.openid(person),
                "token_type": "Bearer",
                "matrix_server_name": person.server_name,
                "expires_in": 3600,
            },
            "member": {
                "id": "member-1",
                "claimed_user_id": person.user_id,
                "claimed_device_id": "DEVICE",
            },
        }
        answer = world.post("/get_token", body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["url"] == LIVEKIT_URL
        claims = jwt.decode(answer.json()["jwt"], secret, algorithms=["HS256"])
        assert claims["iss"] == "homeport"
        assert claims["sub"] == tokens.livekit_identity(person.user_id, "DEVICE", "member-1")
        video = claims["video"]
        assert video["room"] == tokens.livekit_room_alias(world.internal_room, slot)
        # Users of every homeserver of the deployment create and publish, not only one's.
        assert video["roomJoin"]
        assert video["roomCreate"]
        assert video["canPublish"]
        # Claiming someone else is refused, in lk-jwt-service's words.
        lying = {**body, "member": {**body["member"], "claimed_user_id": world.carol.user_id}}
        refused = world.post("/get_token", lying)
        assert (refused.status_code, refused.json()["errcode"]) == (401, "M_UNAUTHORIZED")
    legacy = world.post(
        "/sfu/get",
        {
            "room": world.external_room,
            "device_id": "DEVICE",
            "openid_token": {
                "access_token": world.openid(world.alice),
                "matrix_server_name": world.alice.server_name,
            },
        },
    )
    assert legacy.status_code == 200, legacy.text
    claims = jwt.decode(legacy.json()["jwt"], secret, algorithms=["HS256"])
    assert claims["sub"] == f"{world.alice.user_id}:DEVICE"
    assert claims["video"]["room"] == tokens.livekit_room_alias(world.external_room, slot)
    outsider = world.post(
        "/sfu/get",
        {
            "room": world.external_room,
            "device_id": "D",
            "openid_token": {
                "access_token": world.openid(world.carol),
                "matrix_server_name": world.carol.server_name,
            },
        },
    )
    assert (outsider.status_code, outsider.json()["errcode"]) == (403, "M_FORBIDDEN")
    bad = world.post("/get_token", {"room_id": world.internal_room})
    assert (bad.status_code, bad.json()["errcode"]) == (400, "M_BAD_JSON")
    preflight = world.http.options(f"{world.url}/get_token")
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_homeservers_point_element_call_at_the_service(world: World) -> None:
    for hs in world.running.deployment.homeservers.values():
        body = world.http.get(f"{hs.base_url}/.well-known/matrix/client").json()
        assert body["org.matrix.msc4143.rtc_foci"] == [
            {"type": "livekit", "livekit_service_url": world.url}
        ]


def test_status_metrics_and_secrets_on_disk(world: World) -> None:
    status = status_json(world.running.config_path)
    conference = status["conference"]
    assert conference["url"] == world.url
    assert status["services"]["conference"]["state"] == "ready"
    for key in ("auth_token_file", "jitsi_app_secret_file", "livekit_secret_file"):
        assert Path(conference[key]).read_text().strip()
        mode = os.stat(conference[key]).st_mode & 0o777
        assert mode == 0o600, (key, oct(mode))
    # The module's endpoint behind it answers server admins only.
    internal = world.running.deployment.homeservers["internal"].base_url
    forbidden = world.http.get(
        f"{internal}/_homeport/v1/room_member",
        params={"room_id": world.internal_room, "user_id": world.alice.user_id},
        headers={"Authorization": f"Bearer {world.alice.token}"},
    )
    assert (forbidden.status_code, forbidden.json()["errcode"]) == (403, "M_FORBIDDEN")
    metrics = world.http.get(f"{world.url}/metrics")
    assert metrics.status_code == 200
    assert 'homeport_conference_requests_total{endpoint="verify_user",outcome="ok"}' in metrics.text


def _expire(world: World, person: Person, token: str) -> None:
    """Move a real token past its hour (Synapse's OpenID tokens are valid for 3600 s)."""
    name = next(
        n
        for n, h in world.running.deployment.homeservers.items()
        if h.server_name == person.server_name
    )
    database = world.running.layout.homeserver(name).sqlite_database
    with sqlite3.connect(database, timeout=30) as db:
        changed = db.execute(
            "UPDATE open_id_tokens SET ts_valid_until_ms = 0 WHERE token = ?", (token,)
        ).rowcount
    assert changed == 1


def test_an_expired_token_is_refused_and_a_checked_one_is_believed_for_a_while(
    world: World,
) -> None:
    expired = world.openid(world.bob)
    _expire(world, world.bob, expired)
    body = {"token": expired, "matrix_server_name": world.bob.server_name}
    assert world.post("/verify/user", body, **world.auth).json()["results"] == {"user": False}
    # Checked once, a token is believed without asking again (bounded, five minutes).
    checked = world.openid(world.bob)
    body = {"token": checked, "matrix_server_name": world.bob.server_name}
    assert world.post("/verify/user", body, **world.auth).json()["user_id"] == world.bob.user_id
    _expire(world, world.bob, checked)
    assert world.post("/verify/user", body, **world.auth).json()["user_id"] == world.bob.user_id


def test_prosody_s_module_as_a_client(world: World) -> None:
    """The requests mod_auth_matrix_user_verification sends, and what it reads back.

    Element names the conference by the unpadded base32 of the room ID; Jitsi
    lower-cases it; the module upper-cases and decodes it (basexx), then posts
    `{token, room_id, matrix_server_name}` with its `uvs_auth_token`, and lets
    in only `results.user and results.room_membership`, as owner when
    `power_levels.user >= (power_levels.room.state_default or 50)`.
    """
    room_id = room_id_of(tokens.jitsi_room_name(world.internal_room).lower())
    assert room_id == world.internal_room

    def module_asks(person: Person) -> tuple[bool, bool]:
        response = world.http.post(
            f"{world.url}/verify/user_in_room",
            content=json.dumps(
                {
                    "token": world.openid(person),
                    "room_id": room_id,
                    "matrix_server_name": person.server_name,
                }
            ),
            headers={"Content-Type": "application/json", **world.auth},
        )
        assert response.status_code == 200  # the module decodes nothing else
        data = response.json()
        allowed = data["results"]["user"] is True and data["results"]["room_membership"] is True
        power = data["power_levels"]
        owner = power is not None and power["user"] >= (power["room"].get("state_default") or 50)
        return allowed, owner

    assert module_asks(world.alice) == (True, True)
    assert module_asks(world.bob) == (True, False)
    assert module_asks(world.carol) == (False, False)


FLOOD_LIMIT = 1000  # far past the burst (60) and a second's rate (20)


def test_a_flood_from_one_address_is_slowed_down(world: World) -> None:
    """Eight callers at once from one address, until the service says 429: however fast or
    slow each answer is, they outrun 20 a second. Then the bucket refills by itself."""
    body = {"token": "x", "matrix_server_name": "partner.example.org"}
    limited: list[httpx.Response] = []
    sent = itertools.count()

    def flood() -> None:
        while not limited and next(sent) < FLOOD_LIMIT:
            answer = world.post("/verify/user", body, **world.auth)
            if answer.status_code == 429:
                limited.append(answer)

    with ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(flood) for _ in range(8)]:
            done.result()
    assert limited, f"{FLOOD_LIMIT} requests from one address, eight at a time, never limited"
    assert limited[0].json()["errcode"] == "M_LIMIT_EXCEEDED"
    wait_ms = limited[0].json()["retry_after_ms"]
    assert wait_ms > 0
    # After the wait it names, the same caller is heard again (and the next tests with it).
    time.sleep(wait_ms / 1000)
    for _ in range(100):
        again = world.post("/verify/user", body, **world.auth)
        if again.status_code != 429:
            break
        time.sleep(again.json()["retry_after_ms"] / 1000)
    assert again.status_code == 200, again.text


def test_with_the_hosting_homeserver_down_another_one_in_the_room_answers(
    world: World,
) -> None:
    """It stops internal, and has it running again before it ends."""
    config = str(world.running.config_path)
    bob_token = world.openid(world.bob)
    alice_token = world.openid(world.alice)
    homeport("stop", "-c", config, "internal")
    try:
        # bob (external) in internal's room: external shares it and answers.
        answer = world.post(
            "/verify/user_in_room",
            {
                "token": bob_token,
                "matrix_server_name": world.bob.server_name,
                "room_id": world.internal_room,
            },
            **world.auth,
        ).json()
        assert answer["results"] == {"user": True, "room_membership": True}, answer
        # alice's own homeserver cannot vouch for her: a clear answer, not a hang.
        refused = world.post(
            "/jitsi/token",
            {
                "token": alice_token,
                "matrix_server_name": world.alice.server_name,
                "room_id": world.external_room,
            },
        )
        assert (refused.status_code, refused.json()["errcode"]) == (503, "M_UNAVAILABLE")
        assert "cannot be reached" in refused.json()["error"]
    finally:
        homeport("start", "-c", config, "internal")
        world.running.wait_ready()
