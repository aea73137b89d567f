"""`policy.rooms.federation: never` (internal in the starter): rooms made there never federate."""

from __future__ import annotations

import ssl
from urllib.parse import quote

import httpx
import pytest
from nio import JoinError, RoomCreateResponse, RoomInviteError, RoomPreset

from tests.harness import RunningDeployment
from tests.matrix import logged_in

pytestmark = pytest.mark.e2e


async def _create_content(base_url: str, token: str, room_id: str, ctx: ssl.SSLContext) -> dict:  # type: ignore[type-arg]
    async with httpx.AsyncClient(verify=ctx) as http:
        response = await http.get(
            f"{base_url}/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.create/",
            headers={"Authorization": f"Bearer {token}"},
        )
    response.raise_for_status()
    content: dict = response.json()  # type: ignore[type-arg]
    return content


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
