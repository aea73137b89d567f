"""`policy.rooms.federation: never` (internal in the starter): rooms made there never federate."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import JoinError, RoomCreateResponse, RoomInviteError, RoomPreset

from homeport.trust import client_ssl_context
from tests.harness import RunningDeployment
from tests.matrix import logged_in

pytestmark = pytest.mark.e2e


async def _as(
    ctx: ssl.SSLContext, method: str, url: str, token: str, **kwargs: Any
) -> httpx.Response:
    async with httpx.AsyncClient(verify=ctx, timeout=60) as http:
        return await http.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )


async def _create_content(base_url: str, token: str, room_id: str, ctx: ssl.SSLContext) -> Any:
    url = f"{base_url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.create/"
    response = await _as(ctx, "GET", url, token)
    response.raise_for_status()
    return response.json()


@pytest.mark.parametrize("admin", [False, True], ids=["user", "server-admin"])
async def test_rooms_created_on_a_never_server_are_non_federated(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext, admin: bool
) -> None:
    internal = pair.deployment.homeservers["internal"]
    external = pair.deployment.homeservers["external"]
    alice_id, alice_pw = await pair.new_user("internal", admin=admin)
    bob_id, bob_pw = await pair.new_user("external")
    alias = f"nofed{'admin' if admin else 'user'}"

    async with logged_in(internal.base_url, alice_id, alice_pw, pair_ssl) as alice:
        # The client even asks for a federated room explicitly: the policy wins.
        async with httpx.AsyncClient(verify=pair_ssl) as http:
            response = await http.post(
                f"{internal.base_url}/_matrix/client/v3/createRoom",
                headers={"Authorization": f"Bearer {alice.access_token}"},
                json={
                    "preset": "public_chat",
                    "room_alias_name": alias,
                    "creation_content": {"m.federate": True},
                },
            )
        assert response.status_code == 200, response.text
        room_id = response.json()["room_id"]
        content = await _create_content(internal.base_url, alice.access_token, room_id, pair_ssl)
        assert content.get("m.federate") is False

        invited = await alice.room_invite(room_id, bob_id)
        assert isinstance(invited, RoomInviteError), invited

    async with logged_in(external.base_url, bob_id, bob_pw, pair_ssl) as bob:
        joined = await bob.join(f"#{alias}:{internal.server_name}")
        assert isinstance(joined, JoinError), joined


async def test_rooms_created_on_a_creator_choice_server_federate_by_default(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    external = pair.deployment.homeservers["external"]
    bob_id, bob_pw = await pair.new_user("external")
    async with logged_in(external.base_url, bob_id, bob_pw, pair_ssl) as bob:
        created = await bob.room_create(preset=RoomPreset.public_chat)
        assert isinstance(created, RoomCreateResponse), created
        content = await _create_content(
            external.base_url, bob.access_token, created.room_id, pair_ssl
        )
        assert content.get("m.federate", True) is True


@pytest.mark.parametrize("admin", [False, True], ids=["user", "server-admin"])
async def test_an_upgrade_cannot_create_a_federated_room_on_a_never_server(
    pair: RunningDeployment, admin: bool
) -> None:
    """A room upgrade is a room creation: from internal, a federated room stays where it is.

    On the starter as Homeport ships it (its rate limits, not the relaxed ones)."""
    pair_ssl = client_ssl_context(pair.deployment)
    internal = pair.deployment.homeservers["internal"]
    external = pair.deployment.homeservers["external"]
    alice_id, alice_pw = await pair.new_user("internal", admin=admin)
    bob_id, bob_pw = await pair.new_user("external")
    async with (
        logged_in(internal.base_url, alice_id, alice_pw, pair_ssl) as alice,
        logged_in(external.base_url, bob_id, bob_pw, pair_ssl) as bob,
    ):
        # Bob's federated room on external; alice (internal) may upgrade it (power 150, v12).
        created = await _as(
            pair_ssl,
            "POST",
            f"{external.base_url}/_matrix/client/v3/createRoom",
            bob.access_token,
            json={
                "preset": "public_chat",
                "power_level_content_override": {"users": {alice_id: 150}},
            },
        )
        assert created.status_code == 200, created.text
        room_id = created.json()["room_id"]
        joined = await _as(
            pair_ssl,
            "POST",
            f"{internal.base_url}/_matrix/client/v3/join/{quote(room_id)}",
            alice.access_token,
            params={"server_name": external.server_name},
            json={},
        )
        assert joined.status_code == 200, joined.text
        version = (await _create_content(external.base_url, bob.access_token, room_id, pair_ssl))[
            "room_version"
        ]

        upgraded = await _as(
            pair_ssl,
            "POST",
            f"{internal.base_url}/_matrix/client/v3/rooms/{quote(room_id)}/upgrade",
            alice.access_token,
            json={"new_version": version},
        )
        assert (upgraded.status_code, upgraded.json()["errcode"]) == (403, "M_FORBIDDEN")
        assert "rooms.federation: never" in upgraded.json()["error"]
        # Nothing happened: the old room is not tombstoned, on either server.
        for base, token in (
            (internal.base_url, alice.access_token),
            (external.base_url, bob.access_token),
        ):
            tombstone = await _as(
                pair_ssl,
                "GET",
                f"{base}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.tombstone/",
                token,
            )
            assert (tombstone.status_code, tombstone.json()["errcode"]) == (404, "M_NOT_FOUND")

        # From external, where rooms may federate, the same upgrade works.
        from_external = await _as(
            pair_ssl,
            "POST",
            f"{external.base_url}/_matrix/client/v3/rooms/{quote(room_id)}/upgrade",
            bob.access_token,
            json={"new_version": version},
        )
        assert from_external.status_code == 200, from_external.text

        # A non-federated room of internal upgrades as before, and stays non-federated.
        own = await _as(
            pair_ssl,
            "POST",
            f"{internal.base_url}/_matrix/client/v3/createRoom",
            alice.access_token,
            json={"preset": "private_chat"},
        )
        assert own.status_code == 200, own.text
        own_upgrade = await _as(
            pair_ssl,
            "POST",
            f"{internal.base_url}/_matrix/client/v3/rooms/{quote(own.json()['room_id'])}/upgrade",
            alice.access_token,
            json={"new_version": version},
        )
        assert own_upgrade.status_code == 200, own_upgrade.text
        successor = own_upgrade.json()["replacement_room"]
        content = await _create_content(internal.base_url, alice.access_token, successor, pair_ssl)
        assert content.get("m.federate") is False
