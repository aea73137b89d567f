"""Three homeservers from one file: verify's whole matrix and the Federation tab.

The product promises "two or more". A third homeserver, `partner`, open to
the federation, joins the starter's internal/external pair; internal's
whitelist names only internal and external, so partner is shut out of it.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from homeport.trust import client_ssl_context
from tests.admin.website import log_in
from tests.harness import (
    TEST_FEDERATION_RETRIES,
    TEST_SYNAPSE_SETTINGS,
    RunningDeployment,
    access_token,
    edit_yaml,
    free_port_run,
    homeport,
    init_deployment,
    running_deployment,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    config = init_deployment(tmp_path_factory.mktemp("three"))
    port = free_port_run(1)

    def add_partner(data: Any) -> None:
        data["homeservers"]["partner"] = {
            "server_name": f"localhost:{port}",
            "port": port,
            "policy": {"allow_public_rooms_over_federation": True},
            "synapse": dict(TEST_SYNAPSE_SETTINGS),
            "federation_retries": dict(TEST_FEDERATION_RETRIES),
        }

    edit_yaml(config, add_partner)
    with running_deployment(config) as running:
        yield running


def test_verify_covers_every_ordered_pair_of_three(three: RunningDeployment) -> None:
    result = homeport("verify", "-c", str(three.config_path), "--json", check=False, timeout=240)
    report = json.loads(result.stdout)
    pairs = {(c["viewer"], c["target"]) for c in report["checks"]}
    names = ("internal", "external", "partner")
    assert pairs == {(a, b) for a in names for b in names if a != b}
    mismatches = [c for c in report["checks"] if not c["ok"]]
    assert mismatches == [], mismatches
    assert result.returncode == 0
    federation = {
        (c["viewer"], c["target"]): c["observed"]
        for c in report["checks"]
        if c["surface"] == "federation"
    }
    assert federation[("partner", "internal")] == "denied"  # internal's whitelist
    assert federation[("internal", "partner")] == "denied"
    assert federation[("partner", "external")] == "allowed"
    assert federation[("external", "partner")] == "allowed"


async def test_the_federation_tab_of_external_lists_both_others(three: RunningDeployment) -> None:
    deployment = three.deployment
    context = client_ssl_context(deployment)
    servers = {name: hs.server_name for name, hs in deployment.homeservers.items()}
    tokens, admin = {}, ("", "")
    for name in servers:
        user_id, password = await three.new_user(name, admin=name == "external")
        tokens[name] = (await access_token(deployment, name, user_id, password))[0]
        if name == "external":
            admin = (user_id, password)
    async with httpx.AsyncClient(verify=context, timeout=30) as http:

        async def call(name: str, method: str, path: str, **kwargs: Any) -> Any:
            url = f"{deployment.homeservers[name].base_url}{path}"
            answer = await http.request(
                method, url, headers={"Authorization": f"Bearer {tokens[name]}"}, **kwargs
            )
            assert answer.status_code == 200, answer.text
            return answer.json()

        created = await call(
            "external", "POST", "/_matrix/client/v3/createRoom", json={"preset": "public_chat"}
        )
        room = quote(created["room_id"])
        for name in ("internal", "partner"):
            await call(
                name,
                "POST",
                f"/_matrix/client/v3/join/{room}",
                params={"server_name": servers["external"]},
                json={},
            )
        message = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{secrets.token_hex(4)}"
        await call("external", "PUT", message, json={"msgtype": "m.text", "body": "three"})

    assert deployment.admin is not None
    async with httpx.AsyncClient(base_url=deployment.admin.url, verify=context) as website:
        assert (await log_in(website, "external", admin[0], admin[1])).status_code == 303

        async def rows() -> dict[str, str]:
            page = await website.get("/federation")
            assert page.status_code == 200
            found = {}
            for name in ("internal", "partner"):
                row = re.search(
                    rf"<tr>\s*<td><a[^>]*>{re.escape(servers[name])}</a>.*?</tr>", page.text, re.S
                )
                found[name] = row.group(0) if row else ""
            return found

        deadline = time.monotonic() + 60
        found = await rows()
        while not all("Working" in row for row in found.values()):
            assert time.monotonic() < deadline, found
            await asyncio.sleep(1)
            found = await rows()
    # Each of the two others shares the one room with external.
    for row in found.values():
        assert re.search(r'<td class="num">1</td>', row), row


async def test_a_room_mixed_with_a_server_internal_shuts_out_answers_at_once(
    three: RunningDeployment,
) -> None:
    """Internal (whitelist: itself and external) joins external's room after partner's
    user spoke in it. Internal cannot ask partner for its key; it asks external
    (`trusted_key_servers`, rendered by Homeport), so the partial join completes and the
    room answers, instead of a join that "succeeds" and a room that never loads
    (docs/visibility.md, "Rooms that mix servers")."""
    deployment = three.deployment
    context = client_ssl_context(deployment)
    servers = {name: hs.server_name for name, hs in deployment.homeservers.items()}
    rendered = three.layout.homeserver("internal").config_file.read_text()
    assert f"- server_name: {servers['external']}" in rendered
    tokens, users = {}, {}
    for name in servers:
        users[name], tokens[name], _ = await three.new_session(name)
    # A room that hangs makes these reads wait: a guard well past any healthy answer.
    async with httpx.AsyncClient(verify=context, timeout=30) as http:

        async def call(name: str, method: str, path: str, **kwargs: Any) -> Any:
            url = f"{deployment.homeservers[name].base_url}{path}"
            try:
                answer = await http.request(
                    method, url, headers={"Authorization": f"Bearer {tokens[name]}"}, **kwargs
                )
            except httpx.TimeoutException:
                raise AssertionError(f"{name}: {method} {path} had no answer in 30 s") from None
            assert answer.status_code == 200, (name, path, answer.status_code, answer.text)
            return answer.json()

        created = await call(
            "external", "POST", "/_matrix/client/v3/createRoom", json={"preset": "public_chat"}
        )
        room = quote(created["room_id"])
        join = f"/_matrix/client/v3/join/{room}"
        via = {"server_name": servers["external"]}
        await call("partner", "POST", join, params=via, json={})
        said = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{secrets.token_hex(4)}"
        await call("partner", "PUT", said, json={"msgtype": "m.text", "body": "from partner"})

        await call("internal", "POST", join, params=via, json={})
        members = await call("internal", "GET", f"/_matrix/client/v3/rooms/{room}/joined_members")
        assert set(members["joined"]) == set(users.values())  # the whole room, partner's too
        await call(
            "internal",
            "GET",
            f"/_matrix/client/v3/rooms/{room}/messages",
            params={"dir": "b", "limit": 20},
        )
        hello = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{secrets.token_hex(4)}"
        await call("internal", "PUT", hello, json={"msgtype": "m.text", "body": "from internal"})

        async def external_heard() -> bool:
            chunk = (
                await call(
                    "external",
                    "GET",
                    f"/_matrix/client/v3/rooms/{room}/messages",
                    params={"dir": "b", "limit": 20},
                )
            )["chunk"]
            return any(e.get("content", {}).get("body") == "from internal" for e in chunk)

        deadline = time.monotonic() + 60
        while not await external_heard():
            assert time.monotonic() < deadline, "external never got internal's message"
            await asyncio.sleep(0.5)

    # Lint (with the deployment running) and verify name the room that mixes servers.
    linted = json.loads(homeport("lint", "-c", str(three.config_path), "--json").stdout)
    (mixed,) = [f for f in linted["findings"] if f["id"] == "mixed-rooms"]
    assert mixed["homeserver"] == "internal"
    assert servers["partner"] in mixed["message"]
    assert created["room_id"] in mixed["message"]

    # The Rooms page of internal marks it, naming the server internal shuts out.
    admin, password = await three.new_user("internal", admin=True)
    assert deployment.admin is not None
    async with httpx.AsyncClient(base_url=deployment.admin.url, verify=context) as website:
        assert (await log_in(website, "internal", admin, password)).status_code == 303
        page = await website.get("/rooms", params={"q": created["room_id"]})
        assert page.status_code == 200
        row = re.search(
            rf"<tr>(?:(?!</tr>).)*{re.escape(created['room_id'])}.*?</tr>", page.text, re.S
        )
        assert row, page.text
        assert re.search(
            r'<td class="mixed">.*mixed.*' + re.escape(servers["partner"]), row.group(0), re.S
        )
