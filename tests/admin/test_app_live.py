"""The admin website in process, against the real homeservers of the shared pair.

`create_app` is built with the live Synapse APIs and driven over its ASGI
interface: no browser, no uvicorn, the real Synapses behind it.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette

from homeport.admin.app import create_app
from homeport.admin.synapse import LiveHomeservers
from homeport.capabilities import website_pages
from homeport.policy.surfaces import expectations
from homeport.store.database import open_store
from homeport.synapse.service_account import service_client
from tests.admin.website import browser, csrf_token, log_in
from tests.harness import RunningDeployment
from tests.matrix import share_a_room

pytestmark = pytest.mark.e2e


@dataclass
class Live:
    app: Starlette
    admin: tuple[str, str]
    user: tuple[str, str]
    external: str


@pytest.fixture(scope="module")
async def live(pair: RunningDeployment, pair_ssl: ssl.SSLContext) -> AsyncIterator[Live]:
    deployment = pair.deployment
    await share_a_room(pair, pair_ssl)
    admin = await pair.new_user("internal", admin=True)
    user = await pair.new_user("internal")
    api = LiveHomeservers(deployment, pair_ssl)
    store = open_store(deployment)
    try:
        yield Live(
            create_app(deployment, api, store=store, pages=website_pages()),
            admin,
            user,
            deployment.homeservers["external"].server_name,
        )
    finally:
        await api.aclose()
        store.dispose()


@pytest.fixture
async def client(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(live.app) as client:
        yield client


async def test_pages_need_a_login(client: httpx.AsyncClient) -> None:
    for path in ("/federation", "/rooms", "/policy", "/federation/example.org"):
        answer = await client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/login?next={quote(path, safe='')}"
    assert (await client.get("/health")).json() == {"status": "ok"}


async def test_only_server_admins_log_in(live: Live, client: httpx.AsyncClient) -> None:
    refused = await log_in(client, "internal", *live.user)
    wrong = await log_in(client, "internal", live.admin[0], "not the password")
    # One answer for both: the page never confirms that a non-admin's password is right.
    for answer in (refused, wrong):
        assert answer.status_code == 400
        assert "Wrong username or password, or not a server admin of internal" in answer.text
    assert live.user[0] not in refused.text
    assert (await client.get("/federation")).status_code == 303


async def test_the_federation_tab_shows_the_real_destinations(
    live: Live, client: httpx.AsyncClient
) -> None:
    answer = await log_in(client, "internal", *live.admin)
    assert (answer.status_code, answer.headers["location"]) == (303, "/federation")
    assert answer.cookies  # a new session at login
    page = await client.get("/federation")
    assert page.status_code == 200
    row = re.search(rf"<tr>\s*<td><a[^>]*>{re.escape(live.external)}</a>.*?</tr>", page.text, re.S)
    assert row, page.text
    assert "Working" in row.group(0)
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    # The table alone, for htmx: same rows, no page around them.
    partial = await client.get("/federation?q=localhost", headers={"HX-Request": "true"})
    assert live.external in partial.text
    assert "<html" not in partial.text


async def test_a_destination_and_its_rooms(live: Live, client: httpx.AsyncClient) -> None:
    await log_in(client, "internal", *live.admin)
    page = await client.get(f"/federation/{quote(live.external, safe='')}")
    assert page.status_code == 200
    assert "No reset is needed" in page.text
    assert "(here)" not in page.text
    assert live.external in page.text  # the room was created on external
    missing = await client.get("/federation/nowhere.example.org")
    assert missing.status_code == 404


async def test_reset_needs_csrf_and_synapse_says_when_none_is_needed(
    live: Live, client: httpx.AsyncClient
) -> None:
    await log_in(client, "internal", *live.admin)
    target = f"/federation/{quote(live.external, safe='')}/reset"
    assert (await client.post(target, data={"x": "1"})).status_code == 403
    assert (await client.post(target, data={"csrf_token": "forged"})).status_code == 403
    token = csrf_token((await client.get("/federation")).text)
    answer = await client.post(target, data={"csrf_token": token})
    assert answer.status_code == 400  # Synapse is not backing off: it refuses the reset
    assert "needs no reset" in answer.text
    by_header = await client.post(target, data={"x": "1"}, headers={"X-CSRF-Token": token})
    assert by_header.status_code == 400


async def test_the_policy_page_says_what_verify_expects(
    live: Live, client: httpx.AsyncClient
) -> None:
    await log_in(client, "internal", *live.admin)
    page = await client.get("/policy")
    assert page.status_code == 200
    deployment = live.app.state.site.deployment
    sections = re.findall(
        r"<h2>What users of (\S+) see of (\S+)</h2>(.*?)</section>", page.text, re.S
    )
    seen = {
        (viewer, target): dict(re.findall(r'data-surface="(\w+)" data-value="(\w+)"', body))
        for viewer, target, body in sections
    }
    for viewer, target in (("external", "internal"), ("internal", "external")):
        assert seen[(viewer, target)] == expectations(deployment, viewer, target, None)


async def test_metrics_count_pages_by_route(live: Live, client: httpx.AsyncClient) -> None:
    await log_in(client, "internal", *live.admin)
    await client.get("/rooms")
    metrics = (await client.get("/metrics")).text
    assert 'homeport_admin_requests_total{route="rooms",status="200"}' in metrics
    assert 'homeport_admin_render_seconds_bucket{le="0.005",route="rooms"}' in metrics


async def test_a_demoted_admin_is_logged_out_by_synapse_s_own_answer(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext, live: Live, client: httpx.AsyncClient
) -> None:
    """Synapse says 403 to a demoted admin: the session ends and its token is logged out."""
    user_id, password = await pair.new_user("internal", admin=True)
    assert (await log_in(client, "internal", user_id, password)).status_code == 303
    (session,) = [
        s for s in live.app.state.site.sessions.all() if s.logins["internal"].user_id == user_id
    ]
    token = session.logins["internal"].access_token
    base = pair.deployment.homeservers["internal"].base_url
    async with service_client(pair.deployment, "internal", pair_ssl) as admin:
        await admin.client.request(
            "PUT", f"/_synapse/admin/v2/users/{quote(user_id)}", json={"admin": False}
        )
    answer = await client.get("/rooms")  # asks Synapse's admin API as the demoted admin
    assert (answer.status_code, answer.headers["location"]) == (303, "/login?revoked=1")
    async with httpx.AsyncClient(verify=pair_ssl) as http:
        whoami = await http.get(
            f"{base}/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {token}"}
        )
    assert (whoami.status_code, whoami.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert (await client.get("/policy")).status_code == 303  # no session any more
