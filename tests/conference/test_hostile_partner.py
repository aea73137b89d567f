"""A partner that points the conference service at this machine gets nowhere.

The partner `localhost` is allowed (`allow_homeservers`) and listed on its
own port only (`allow_private_addresses: [127.0.0.1:<its port>]`), as an
operator would list a partner on a private network. It is a real HTTPS
server on loopback; the service is the real `Matrix` (and, once, the real
API) with the spec's well-known port moved to the partner's. A canary
listener stands for what must stay private on this machine (a Synapse admin
API, an audit bot): it must never see a connection.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from homeport.conference.app import Settings, create_app
from homeport.conference.decide import Refused
from homeport.conference.matrix import Matrix
from homeport.conference.secrets import Secrets
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment
from tests.conference.hostile import FLOOD_BYTES, Canary, Partner, Reply, partner_tls
from tests.harness import edit_yaml, init_deployment

WK = "/.well-known/matrix/server"
USERINFO = "/_matrix/federation/v1/openid/userinfo"
NOT_LISTED = "is loopback, not in conference.allow_private_addresses"
BLOCKED = "localhost resolves to an address this service does not connect to: "


@dataclass
class Hostile:
    deployment: Deployment
    server_tls: ssl.SSLContext  # a certificate for localhost, from a CA of the test's own
    client_tls: ssl.SSLContext
    partner: Partner
    canary: Canary

    def matrix(self, deployment: Deployment | None = None) -> Matrix:
        """A fresh service side (nothing remembered), the partner's port as the well-known's."""
        return Matrix(deployment or self.deployment, self.client_tls, self.partner.port)

    @property
    def own_port(self) -> int:
        return self.deployment.homeservers["internal"].port


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hostile]:
    directory = tmp_path_factory.mktemp("hostile")
    server_tls, client_tls = partner_tls(directory / "partner")
    partner, canary = Partner(server_tls), Canary()
    port = await partner.start()
    await canary.start()
    config = init_deployment(directory / "deployment")

    def allow(data: Any) -> None:
        data["conference"]["allow_homeservers"] = ["localhost"]
        data["conference"]["allow_private_addresses"] = [f"127.0.0.1:{port}"]

    edit_yaml(config, allow)
    deployment, _ = load_deployment(config)
    yield Hostile(deployment, server_tls, client_tls, partner, canary)
    await partner.stop()
    await canary.stop()


@pytest.fixture
def hostile(world: Hostile) -> Hostile:
    world.partner.routes.clear()
    world.partner.requests.clear()
    world.partner.flooded.clear()
    world.canary.connections = 0
    return world


async def _refused(check: Awaitable[str]) -> Refused:
    with pytest.raises(Refused) as raised:
        await check
    return raised.value


async def _user_of(hostile: Hostile, server_name: str, token: str) -> str:
    matrix = hostile.matrix()
    try:
        return await matrix.user_of(server_name, token)
    finally:
        await matrix.aclose()


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{canary}/_synapse/admin/v1/users/@admin:localhost",  # plain HTTP
        "https://127.0.0.1:{partner}/delegation.json",  # the partner's address, not its name
        "https://localhost:{canary}/delegation.json",  # another port
    ],
)
async def test_a_well_known_redirect_elsewhere_is_not_followed(
    hostile: Hostile, location: str
) -> None:
    target = location.format(canary=hostile.canary.port, partner=hostile.partner.port)
    hostile.partner.routes[WK] = Reply.redirect(target)
    hostile.partner.routes["/delegation.json"] = Reply.json({"m.server": "127.0.0.1:1"})

    refused = await _refused(_user_of(hostile, "localhost", secrets.token_urlsafe()))

    assert hostile.canary.connections == 0
    assert hostile.partner.requests == [WK]
    # No well-known: the spec's fallback, port 8448 of the name, which is loopback.
    assert (refused.status, refused.errcode) == (401, "M_UNAUTHORIZED")
    assert str(refused).startswith(BLOCKED), refused
    assert f"127.0.0.1:8448 {NOT_LISTED}" in str(refused)


async def test_a_redirect_to_https_on_the_same_host_is_followed(hostile: Hostile) -> None:
    port = hostile.partner.port
    hostile.partner.routes[WK] = Reply.redirect(f"https://localhost:{port}/delegation.json")
    hostile.partner.routes["/delegation.json"] = Reply.json({"m.server": f"localhost:{port}"})
    hostile.partner.routes[USERINFO] = Reply.json({"sub": "@alice:localhost"})

    assert await _user_of(hostile, "localhost", "the-token") == "@alice:localhost"
    assert hostile.partner.requests == [
        WK,
        "/delegation.json",
        f"{USERINFO}?access_token=the-token",
    ]


@pytest.mark.parametrize(
    ("delegated", "refused_address"),
    [
        ("127.0.0.1:{canary}", "127.0.0.1:{canary}"),
        ("localhost:{canary}", "127.0.0.1:{canary}"),  # a name that resolves to loopback
        ("[::1]:{canary}", "[::1]:{canary}"),
        ("127.0.0.1:{own}", "127.0.0.1:{own}"),  # the deployment's homeserver's address
        ("127.0.0.2:{partner}", "127.0.0.2:{partner}"),  # listed: one address, one port
    ],
)
async def test_a_delegation_to_loopback_is_refused_before_connecting(
    hostile: Hostile, delegated: str, refused_address: str
) -> None:
    ports = {
        "canary": hostile.canary.port,
        "own": hostile.own_port,
        "partner": hostile.partner.port,
    }
    hostile.partner.routes[WK] = Reply.json({"m.server": delegated.format(**ports)})

    refused = await _refused(_user_of(hostile, "localhost", secrets.token_urlsafe()))

    assert hostile.canary.connections == 0
    assert hostile.partner.requests == [WK]
    assert (refused.status, refused.errcode) == (401, "M_UNAUTHORIZED")
    assert str(refused) == f"{BLOCKED}{refused_address.format(**ports)} {NOT_LISTED}"


async def test_a_10_mb_well_known_is_read_no_further_than_64_kib(hostile: Hostile) -> None:
    flood = Reply(200, {"Content-Type": "application/json"}, b'{"m.server": "', FLOOD_BYTES)
    hostile.partner.routes[WK] = flood

    refused = await _refused(_user_of(hostile, "localhost", secrets.token_urlsafe()))

    # The service hung up early, and believed nothing (port 8448 is the fallback).
    assert await hostile.partner.flood_sent(WK) < FLOOD_BYTES
    assert (refused.status, refused.errcode) == (401, "M_UNAUTHORIZED")
    assert f"127.0.0.1:8448 {NOT_LISTED}" in str(refused)


async def test_a_10_mb_userinfo_is_read_no_further_than_64_kib(hostile: Hostile) -> None:
    hostile.partner.routes[WK] = Reply.json({"m.server": f"localhost:{hostile.partner.port}"})
    hostile.partner.routes[USERINFO] = Reply(200, {}, b'{"sub": "@alice:localhost', FLOOD_BYTES)

    refused = await _refused(_user_of(hostile, "localhost", secrets.token_urlsafe()))

    assert await hostile.partner.flood_sent(USERINFO) < FLOOD_BYTES
    assert (refused.status, refused.errcode) == (401, "M_UNAUTHORIZED")
    assert str(refused) == "localhost answered more than 65536 bytes for this token"


async def test_the_well_known_is_fetched_once_for_many_checks(hostile: Hostile) -> None:
    hostile.partner.routes[WK] = Reply.json({"m.server": f"localhost:{hostile.partner.port}"})
    hostile.partner.routes[USERINFO] = Reply.json({"sub": "@alice:localhost"})
    matrix = hostile.matrix()
    try:
        for n in range(5):
            assert await matrix.user_of("localhost", f"token-{n}") == "@alice:localhost"
    finally:
        await matrix.aclose()
    assert hostile.partner.asked(WK) == 1
    assert hostile.partner.asked(USERINFO) == 5


async def test_an_unlisted_partner_on_loopback_is_never_connected_to(hostile: Hostile) -> None:
    hostile.partner.routes[WK] = Reply.json({"m.server": f"localhost:{hostile.partner.port}"})
    conference = hostile.deployment.conference
    assert conference is not None
    unlisted = hostile.deployment.model_copy(
        update={"conference": conference.model_copy(update={"allow_private_addresses": []})}
    )
    matrix = hostile.matrix(unlisted)
    try:
        refused = await _refused(matrix.user_of("localhost", secrets.token_urlsafe()))
    finally:
        await matrix.aclose()
    assert hostile.partner.requests == []
    assert (refused.status, refused.errcode) == (401, "M_UNAUTHORIZED")
    assert f"127.0.0.1:8448 {NOT_LISTED}" in str(refused)


async def test_the_deployment_s_own_homeservers_are_reached_on_loopback(hostile: Hostile) -> None:
    # A stand-in for internal's Synapse on its port: not listed, and not needed.
    own = Partner(hostile.server_tls)
    port = await own.start(hostile.own_port)
    own.routes[USERINFO] = Reply.json({"sub": f"@carol:localhost:{port}"})
    try:
        assert await _user_of(hostile, f"localhost:{port}", "t") == f"@carol:localhost:{port}"
    finally:
        await own.stop()


async def test_an_anonymous_caller_gets_a_refusal_not_a_request_to_this_machine(
    hostile: Hostile,
) -> None:
    conference = hostile.deployment.conference
    assert conference is not None
    hostile.partner.routes[WK] = Reply.json({"m.server": f"127.0.0.1:{hostile.canary.port}"})
    matrix = hostile.matrix()
    app = create_app(Settings(conference, Secrets("auth", b"j" * 48, None)), matrix)
    body = {
        "token": secrets.token_urlsafe(),
        "matrix_server_name": "localhost",
        "room_id": "!room:localhost",
    }
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://conf") as client:
            answer = await client.post("/jitsi/token", json=body)
            prosody = await client.post(
                "/verify/user", json=body, headers={"Authorization": "Bearer auth"}
            )
    finally:
        await matrix.aclose()
    assert hostile.canary.connections == 0
    assert answer.status_code == 401, answer.text
    assert answer.json() == {
        "errcode": "M_UNAUTHORIZED",
        "error": f"{BLOCKED}127.0.0.1:{hostile.canary.port} {NOT_LISTED}",
    }
    assert prosody.status_code == 200, prosody.text
    assert prosody.json() == {"results": {"user": False}, "user_id": None}
