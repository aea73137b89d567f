"""One homeserver with internal spaces (`homeport init --model single`), and a second
homeserver playing the outside world: the Homeport module keeps internal rooms internal,
against the requests Element makes. On the settings Homeport ships."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import expect

from homeport.trust import client_ssl_context
from tests.browser import chromium, log_in
from tests.harness import (
    RunningDeployment,
    access_token,
    edit_yaml,
    homeport,
    init_deployment,
    running_deployment,
)
from tests.walkthrough import run_walkthrough, walkthrough

pytestmark = pytest.mark.e2e


LATER = "#later"
TEAM = "#team"  # the README's walk-through makes it (as #staff in the README)
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def _add_the_outside_world(config: Path) -> None:
    """A second homeserver, federating with anyone, on the next free port of the run."""

    def edit(data: Any) -> None:
        main = data["homeservers"]["main"]
        port = int(main["port"]) + 4  # after the website, the audit bot and alerts
        host = str(main["server_name"]).rsplit(":", 1)[0]
        # A second internal space, whose alias no room has yet: the drift test makes it.
        main["policy"]["rooms"]["internal_spaces"].extend([LATER, TEAM])
        data["homeservers"]["outside"] = {
            "server_name": f"{host}:{port}",
            "address": "127.0.0.1",
            "port": port,
            "database": "sqlite",
        }

    edit_yaml(config, edit)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    config = init_deployment(tmp_path_factory.mktemp("single"), model="single")
    _add_the_outside_world(config)
    with running_deployment(config) as running:
        yield running


@dataclass
class Client:
    """A logged-in user, making a client's raw requests."""

    base_url: str
    token: str
    user_id: str
    context: ssl.SSLContext

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> httpx.Response:
        async with httpx.AsyncClient(verify=self.context, timeout=60) as http:
            return await http.request(
                method,
                f"{self.base_url}/_matrix/client/v3{path}",
                headers={"Authorization": f"Bearer {self.token}"},
                json=body if body is not None or method != "GET" else None,
                params=params,
            )

    async def ok(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        response = await self.call(method, path, body, **params)
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        return response.json()

    async def create(self, **body: Any) -> str:
        room_id: str = (await self.ok("POST", "/createRoom", body))["room_id"]
        return room_id

    async def state(self, room_id: str, kind: str, key: str, content: Any) -> httpx.Response:
        return await self.call("PUT", f"/rooms/{quote(room_id)}/state/{kind}/{quote(key)}", content)

    async def federates(self, room_id: str) -> bool:
        content = await self.ok("GET", f"/rooms/{quote(room_id)}/state/m.room.create/")
        return content.get("m.federate", True) is True


async def _user(running: RunningDeployment, name: str, admin: bool = False) -> Client:
    user_id, password = await running.new_user(name, admin=admin)
    deployment = running.deployment
    token, _device = await access_token(deployment, name, user_id, password)
    return Client(
        deployment.homeservers[name].base_url, token, user_id, client_ssl_context(deployment)
    )


@dataclass
class Staff:
    """The internal space #staff, made by alice as Element makes a space."""

    space_id: str
    alice: Client
    server: str


@pytest.fixture(scope="module")
async def staff(single: RunningDeployment) -> Staff:
    alice = await _user(single, "main")
    server = single.deployment.homeservers["main"].server_name
    # Element's "Create a space" (public, with an address): no word about federation.
    space_id = await alice.create(
        name="Staff",
        preset="public_chat",
        visibility="public",
        room_alias_name="staff",
        creation_content={"type": "m.space"},
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
        power_level_content_override={"events_default": 100, "invite": 0},
    )
    return Staff(space_id, alice, server)


def _in_space(space_id: str, server: str, **body: Any) -> dict[str, Any]:
    """Element's "Add room" -> "New room" in a space: the parent in the initial state, the
    join rule restricted to the space's members."""
    return {
        "preset": "private_chat",
        "visibility": "private",
        **body,
        "initial_state": [
            {
                "type": "m.space.parent",
                "state_key": space_id,
                "content": {"via": [server], "canonical": True},
            },
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space_id}],
                },
            },
        ],
    }


async def _join_rule(client: Client, room_id: str) -> Any:
    return await client.ok("GET", f"/rooms/{quote(room_id)}/state/m.room.join_rules/")


async def _history(client: Client, room_id: str) -> Any:
    path = f"/rooms/{quote(room_id)}/state/m.room.history_visibility/"
    return (await client.ok("GET", path))["history_visibility"]


async def _add_child(client: Client, space_id: str, room_id: str, server: str) -> httpx.Response:
    return await client.state(space_id, "m.space.child", room_id, {"via": [server]})


def _refused(response: httpx.Response, *words: str) -> None:
    assert (response.status_code, response.json().get("errcode")) == (403, "M_FORBIDDEN"), (
        response.text
    )
    for word in words:
        assert word in response.json()["error"], response.json()["error"]


async def test_the_space_and_rooms_made_in_it_as_element_does_never_federate(
    single: RunningDeployment, staff: Staff
) -> None:
    alice, server = staff.alice, staff.server
    assert not await alice.federates(staff.space_id)  # created with the internal alias
    # Public and world-readable, Synapse would describe it to any server that asks (its
    # room hierarchy API ignores m.federate): it was made invite-only, history for members.
    assert await _join_rule(alice, staff.space_id) == {"join_rule": "invite"}
    assert await _history(alice, staff.space_id) == "shared"

    room_id = await alice.create(**_in_space(staff.space_id, server, name="Plans"))
    assert not await alice.federates(room_id)
    added = await _add_child(alice, staff.space_id, room_id, server)
    assert added.status_code == 200, added.text

    # Even when the client asks for a federated room in the space.
    asked = await alice.create(
        **_in_space(staff.space_id, server, creation_content={"m.federate": True})
    )
    assert not await alice.federates(asked)

    # A subspace, and a room in the subspace: internal too.
    subspace = await alice.create(
        **_in_space(staff.space_id, server, name="Team", creation_content={"type": "m.space"})
    )
    assert not await alice.federates(subspace)
    assert (await _add_child(alice, staff.space_id, subspace, server)).status_code == 200
    deep = await alice.create(**_in_space(subspace, server, name="Deep"))
    assert not await alice.federates(deep)
    assert (await _add_child(alice, subspace, deep, server)).status_code == 200

    # A public room made in the space is one for the space's members.
    open_room = await alice.create(**_in_space(staff.space_id, server, preset="public_chat"))
    open_room_rule = {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": staff.space_id}],
    }
    assert await _join_rule(alice, open_room) == open_room_rule

    # Outside a space, the creator still decides.
    elsewhere = await alice.create(preset="public_chat")
    assert await alice.federates(elsewhere)


async def test_federated_rooms_and_other_servers_users_are_kept_out(
    single: RunningDeployment, staff: Staff
) -> None:
    alice, server = staff.alice, staff.server
    admin = await _user(single, "main", admin=True)
    bob = await _user(single, "outside")
    # Erin makes the rooms (the shipped limits allow ten at a time per user); alice, who
    # made the space, adds them to it.
    erin = await _user(single, "main")

    federated = await erin.create(preset="public_chat", name="Lobby")
    _refused(
        await _add_child(alice, staff.space_id, federated, server),
        "internal space",
        "federates with other servers",
        "Create the room in the space instead",
    )
    # A server admin with every right in the space is no exception.
    await alice.ok("POST", f"/rooms/{quote(staff.space_id)}/invite", {"user_id": admin.user_id})
    await admin.ok("POST", f"/join/{quote(staff.space_id)}", {})
    levels_path = f"/rooms/{quote(staff.space_id)}/state/m.room.power_levels/"
    levels = await alice.ok("GET", levels_path)
    levels["users"][admin.user_id] = 100
    await alice.ok("PUT", levels_path, levels)
    admins_room = await admin.create(preset="public_chat")
    _refused(await _add_child(admin, staff.space_id, admins_room, server), "internal space")
    # A room of the outside world, which this server cannot see.
    theirs = await bob.create(preset="public_chat")
    _refused(await _add_child(alice, staff.space_id, theirs, server), "cannot see it")

    # The internal space in a space that federates; a federated room naming it as parent.
    public_space = await erin.create(preset="public_chat", creation_content={"type": "m.space"})
    _refused(
        await _add_child(erin, public_space, staff.space_id, server),
        "Keep internal spaces in internal spaces only",
    )
    _refused(
        await erin.state(federated, "m.space.parent", staff.space_id, {"via": [server]}),
        "cannot name that space as its parent",
    )

    # A non-federated room open to anyone: Synapse would describe it once in the space.
    open_room = await erin.create(preset="public_chat", creation_content={"m.federate": False})
    _refused(await _add_child(alice, staff.space_id, open_room, server), "open to anyone")
    # Nor may an internal room be opened up afterwards.
    members_only = await erin.create(**_in_space(staff.space_id, server, name="Quiet"))
    assert (await _add_child(alice, staff.space_id, members_only, server)).status_code == 200
    _refused(
        await erin.state(members_only, "m.room.join_rules", "", {"join_rule": "public"}),
        "would describe it",
    )
    _refused(
        await erin.state(
            members_only, "m.room.history_visibility", "", {"history_visibility": "world_readable"}
        ),
        "would describe it",
    )

    # Nobody of another server is invited: not into the space, not into its rooms (they
    # are non-federated: the module's words, or Synapse's own where it refuses first).
    room_id = await erin.create(**_in_space(staff.space_id, server, name="Board"))
    for inviter, target in ((alice, staff.space_id), (erin, room_id)):
        refused = await inviter.call(
            "POST", f"/rooms/{quote(target)}/invite", {"user_id": bob.user_id}
        )
        _refused(refused)
        error = refused.json()["error"]
        assert "unfederatable" in error or f"such as {bob.user_id}" in error, error
    # Nor can they join the space (published in the directory by Element's public preset).
    joined = await bob.call("POST", f"/join/{quote(staff.space_id)}", {}, server_name=server)
    _refused(joined, f"such as {bob.user_id}, cannot be invited or join")


async def test_an_upgrade_in_an_internal_space_stays_non_federated(
    single: RunningDeployment, staff: Staff
) -> None:
    alice, server = staff.alice, staff.server
    # Carol, a user of her own (the shipped limits allow few upgrades a minute), upgrades.
    carol = await _user(single, "main")
    room_id = await carol.create(**_in_space(staff.space_id, server, name="Upgrade me"))
    assert (await _add_child(alice, staff.space_id, room_id, server)).status_code == 200
    version = (await carol.ok("GET", f"/rooms/{quote(room_id)}/state/m.room.create/"))[
        "room_version"
    ]
    upgraded = await carol.ok("POST", f"/rooms/{quote(room_id)}/upgrade", {"new_version": version})
    successor = upgraded["replacement_room"]
    assert not await carol.federates(successor)
    # Element then points the space at the successor and drops the old room.
    assert (await _add_child(alice, staff.space_id, successor, server)).status_code == 200
    assert (await alice.state(staff.space_id, "m.space.child", room_id, {})).status_code == 200


async def test_verify_finds_the_internal_spaces_hidden_from_the_outside(
    single: RunningDeployment, staff: Staff
) -> None:
    result = homeport("verify", "-c", str(single.config_path), "--json", check=False, timeout=600)
    report = json.loads(result.stdout)
    wrong = [c for c in report["checks"] if not c["ok"]]
    assert wrong == [], json.dumps(wrong, indent=1)
    surface = {
        (c["viewer"], c["target"]): c for c in report["checks"] if c["surface"] == "internal_spaces"
    }
    assert surface[("outside", "main")]["observed"] == "hidden"
    assert "summary 404" in surface[("outside", "main")]["detail"]
    assert surface[("main", "outside")]["observed"] == "none"
    # No drift yet; only warnings that #later and #team name no room yet.
    assert [(d["id"], d["key"]) for d in report["drift"]] == [
        ("internal-space-missing", f"homeservers.main.policy.rooms.internal_spaces[{i}]")
        for i in (1, 2)
    ]
    assert result.returncode == 0


async def test_a_space_that_becomes_internal_keeps_what_federates_out_from_then_on(
    single: RunningDeployment, staff: Staff
) -> None:
    """Drift: a federated space with a federated room and a remote member, then the alias
    that homeport.yaml names is given to it. What this server does is refused from then on;
    what is already there stays until an administrator replaces the room."""
    server = staff.server
    dana = await _user(single, "main")
    bob = await _user(single, "outside")
    carol = await _user(single, "outside")
    space = await dana.create(preset="public_chat", creation_content={"type": "m.space"})
    room = await dana.create(preset="public_chat", name="Old")
    assert (await _add_child(dana, space, room, server)).status_code == 200
    await bob.ok("POST", f"/join/{quote(room)}", {}, server_name=server)

    await dana.ok("PUT", f"/directory/room/{quote(f'{LATER}:{server}')}", {"room_id": space})

    invited = await dana.call("POST", f"/rooms/{quote(room)}/invite", {"user_id": carol.user_id})
    _refused(invited, "internal space", f"such as {carol.user_id}")
    version = (await dana.ok("GET", f"/rooms/{quote(room)}/state/m.room.create/"))["room_version"]
    upgrade = await dana.call("POST", f"/rooms/{quote(room)}/upgrade", {"new_version": version})
    _refused(upgrade, "upgrading it would create another federated room")
    another = await dana.create(preset="public_chat")
    _refused(await _add_child(dana, space, another, server), "federates with other servers")

    # The drift is reported, at the key of the internal space that holds it.
    linted = homeport("lint", "-c", str(single.config_path), "--json", check=False)
    assert linted.returncode == 1, linted.stdout + linted.stderr
    summary = json.loads(linted.stdout)
    assert summary["internal_spaces_unchecked"] is None
    key = "homeservers.main.policy.rooms.internal_spaces[1]"
    found = {(f["id"], f["key"]) for f in summary["findings"] if room in f["message"]}
    assert found == {
        ("internal-room-federates", key),
        ("internal-room-remote-members", key),
        ("internal-room-exposed", key),
    }
    remote = next(f for f in summary["findings"] if f["id"] == "internal-room-remote-members")
    assert bob.user_id in remote["message"]
    assert any(
        f["id"] == "internal-room-federates" and space in f["message"] for f in summary["findings"]
    )

    # Verify sees it from the outside, and fails on the drift.
    result = homeport("verify", "-c", str(single.config_path), "--json", check=False, timeout=600)
    report = json.loads(result.stdout)
    seen = next(
        c
        for c in report["checks"]
        if (c["viewer"], c["target"], c["surface"]) == ("outside", "main", "internal_spaces")
    )
    assert (seen["observed"], seen["ok"]) == ("visible", False)
    assert space in seen["detail"]
    assert "internal-room-federates" in {d["id"] for d in report["drift"]}
    assert result.returncode == 1

    # The website shows it, and replaces the room: a non-federated successor in the space,
    # dana moved, bob (another server's) left in the old room, which says where it went.
    admin_id, admin_password = await single.new_user("main", admin=True)
    deployment = single.deployment
    assert deployment.admin is not None
    url = f"https://{deployment.admin.host}:{deployment.admin.port}"
    async with chromium(
        single.layout.admin_tls_certificate, single.layout.ca_certificate
    ) as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await log_in(page, url, "main", admin_id[1:].split(":")[0], admin_password)
        await page.get_by_role("link", name="Internal spaces").click()
        await expect(page.get_by_role("heading", name="Internal spaces")).to_be_visible()
        row = page.locator("tr.problem", has_text=room)
        await expect(row).to_contain_text("federates")
        await expect(row).to_contain_text(bob.user_id)
        await page.screenshot(path=DOCS_IMAGES / "internal-spaces.png", full_page=True)
        await row.get_by_label("users of other servers stay behind").check()
        await row.get_by_role("button", name="Replace with a non-federated room").click()
        await expect(page.locator("#notice")).to_contain_text(f"{room} is replaced by")
        await expect(page.locator("#notice")).to_contain_text("1 of other servers stay")
        assert "not tombstoned" not in await page.locator("#notice").inner_text()

    children = [
        e
        for e in await dana.ok("GET", f"/rooms/{quote(space)}/state")
        if e["type"] == "m.space.child" and e["content"].get("via")
    ]
    assert [c["state_key"] for c in children] != [room]
    (successor,) = [c["state_key"] for c in children]
    assert not await dana.federates(successor)
    assert (await dana.ok("GET", f"/rooms/{quote(successor)}/state/m.room.name/"))["name"] == "Old"
    joined = await dana.ok("GET", "/joined_rooms")
    assert successor in joined["joined_rooms"]
    tombstone = await dana.ok("GET", f"/rooms/{quote(room)}/state/m.room.tombstone/")
    assert tombstone["replacement_room"] == successor
    members = await bob.ok("GET", f"/rooms/{quote(room)}/joined_members")
    assert bob.user_id in members["joined"]


def test_the_readme_walkthrough_of_one_homeserver(
    single: RunningDeployment, tmp_path: Path
) -> None:
    """README's "One homeserver instead", as written (only the port, and the space: #team,
    since this deployment's #staff is the tests')."""
    main = single.deployment.homeservers["main"]
    script = walkthrough("walkthrough-single")
    script = script.replace("8448", str(main.port)).replace("staff", "team")
    result = run_walkthrough(script, tmp_path, single.config_path.parent, "one")
    assert result.returncode in (0, 1), result.stdout + result.stderr  # lint: drift elsewhere
    out = result.stdout
    assert out.count('"m.federate":false') == 2, out
    assert '"errcode":"M_FORBIDDEN"' in out
    assert "Create the room in the space instead" in out
