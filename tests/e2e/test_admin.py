"""The admin website in a real headless Chromium against a real pair of homeservers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from homeport.config.deployment import Deployment
from homeport.synapse.service_account import service_client
from homeport.trust import client_ssl_context
from tests.browser import chromium, log_in
from tests.harness import (
    HOMEPORT,
    RunningDeployment,
    access_token,
    edit_yaml,
    free_port_run,
    homeport,
    init_deployment,
    run_sync,
)

pytestmark = pytest.mark.e2e

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
MARKUP = "<img src=x onerror=alert(1)>"


@dataclass
class Site:
    running: RunningDeployment
    url: str
    admin: tuple[str, str]  # internal server admin (localpart, password)
    alice: tuple[str, str]  # internal user
    bob: tuple[str, str]  # external user
    room_id: str
    room_name: str

    @property
    def certificate(self) -> Path:
        return self.running.layout.admin_tls_certificate


async def _token(deployment: Deployment, name: str, user: str, password: str) -> str:
    return (await access_token(deployment, name, user, password))[0]


async def _call(context: Any, method: str, url: str, token: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(verify=context, timeout=30) as http:
        response = await http.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    config = init_deployment(tmp_path_factory.mktemp("admin"))
    running = RunningDeployment(config)
    running.start()
    try:
        deployment = running.deployment
        assert deployment.admin is not None
        passwords = {name: secrets.token_urlsafe(12) for name in ("root", "alice", "bob")}
        homeport(
            "user",
            "create",
            "-c",
            str(config),
            "internal",
            "root",
            "--admin",
            "--password",
            passwords["root"],
        )
        homeport(
            "user",
            "create",
            "-c",
            str(config),
            "internal",
            "alice",
            "--password",
            passwords["alice"],
        )
        homeport(
            "user", "create", "-c", str(config), "external", "bob", "--password", passwords["bob"]
        )
        context = client_ssl_context(deployment)
        internal = deployment.homeservers["internal"]
        external = deployment.homeservers["external"]
        room_name = f"Lobby {MARKUP}"

        async def share_room() -> str:
            bob = await _token(deployment, "external", "bob", passwords["bob"])
            alice = await _token(deployment, "internal", "alice", passwords["alice"])
            created = await _call(
                context,
                "POST",
                f"{external.base_url}/_matrix/client/v3/createRoom",
                bob,
                json={"preset": "public_chat", "name": room_name},
            )
            room_id = str(created["room_id"])
            await _call(
                context,
                "POST",
                f"{internal.base_url}/_matrix/client/v3/join/{quote(room_id)}",
                alice,
                params={"server_name": external.server_name},
                json={},
            )
            await _call(
                context,
                "PUT",
                f"{internal.base_url}/_matrix/client/v3/rooms/{quote(room_id)}/send/"
                f"m.room.message/{secrets.token_hex(4)}",
                alice,
                json={"msgtype": "m.text", "body": "hello"},
            )
            return room_id

        room_id = run_sync(share_room())
        yield Site(
            running,
            deployment.admin.url,
            ("root", passwords["root"]),
            ("alice", passwords["alice"]),
            ("bob", passwords["bob"]),
            room_id,
            room_name,
        )
    finally:
        if running.process is not None:
            running.stop()
        running.kill_leftovers()


@pytest.fixture(scope="module")
async def browser(site: Site) -> AsyncIterator[Browser]:
    """One Chromium for the module (a launch costs seconds of CPU); each test has a
    context of its own: no cookie or storage crosses from one test to the next."""
    async with chromium(site.certificate, site.running.layout.ca_certificate) as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    yield page
    await context.close()
    assert dialogs == [], f"a script ran from page content: {dialogs}"


async def test_journey_login_destinations_destination_shared_room(site: Site, page: Page) -> None:
    external = site.running.deployment.homeservers["external"].server_name
    await log_in(page, site.url, "internal", *site.admin)
    await expect(page).to_have_url(re.compile(r"/federation$"))
    await expect(page.get_by_role("heading", name="All federation destinations")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=external)
    await expect(row).to_contain_text("Working")
    await expect(row.get_by_role("cell").nth(6)).to_have_text("1")  # federated rooms
    if os.environ.get("UPDATE_SCREENSHOTS"):
        await page.screenshot(path=DOCS_IMAGES / "federation.png", full_page=True)
    # Search as you type: htmx swaps the table in place, Synapse does the filtering.
    await page.get_by_label("Search destinations").fill("no-such-server")
    await expect(page.locator("#destinations")).to_contain_text("No destinations match")
    await expect(page).to_have_url(re.compile(r"q=no-such-server"))
    await page.get_by_label("Search destinations").fill(external.split(":")[0])
    await expect(page.get_by_role("row").filter(has_text=external)).to_contain_text("Working")

    await row.get_by_role("link", name=external).click()
    await expect(page.get_by_role("heading", name=re.compile(re.escape(external)))).to_be_visible()
    rooms = page.get_by_role("table").last
    await expect(rooms).to_contain_text(site.room_id)
    # The room name, markup included, is shown as text.
    await expect(rooms).to_contain_text(site.room_name)
    await expect(rooms).to_contain_text(external)  # created on external
    await expect(page.get_by_text("is on internal's")).to_be_visible()
    if os.environ.get("UPDATE_SCREENSHOTS"):
        await page.screenshot(path=DOCS_IMAGES / "destination.png", full_page=True)

    await page.get_by_role("link", name="Rooms").click()
    await expect(page.get_by_role("heading", name=re.compile("Rooms"))).to_be_visible()
    await expect(page.get_by_role("table")).to_contain_text(site.room_name)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        await page.screenshot(path=DOCS_IMAGES / "rooms.png", full_page=True)

    await page.get_by_role("link", name="Policy").click()
    facts = page.locator("dl.facts")
    await expect(facts).to_contain_text(f"only {external}")
    await expect(facts).to_contain_text("never federate")
    seen_by_external = page.locator("section", has_text="What users of external see of internal")
    await expect(seen_by_external.locator("[data-surface=profile]")).to_have_attribute(
        "data-value", "hidden"
    )
    if os.environ.get("UPDATE_SCREENSHOTS"):
        await page.screenshot(path=DOCS_IMAGES / "policy.png", full_page=True)


async def test_unauthenticated_requests_go_to_login(site: Site, page: Page) -> None:
    for path in ("/federation", "/rooms", "/policy", "/federation/example.org"):
        await page.goto(f"{site.url}{path}")
        await expect(page).to_have_url(re.compile(r"/login\?next="))
        await expect(page.get_by_role("heading", name="Log in as a server admin")).to_be_visible()


async def test_a_non_admin_is_refused(site: Site, page: Page) -> None:
    await log_in(page, site.url, "internal", *site.alice)
    await expect(page.get_by_role("alert")).to_contain_text(
        "Wrong username or password, or not a server admin"
    )
    await page.goto(f"{site.url}/federation")
    await expect(page).to_have_url(re.compile(r"/login"))


async def test_state_changes_need_the_csrf_token(site: Site, page: Page) -> None:
    external = site.running.deployment.homeservers["external"].server_name
    await log_in(page, site.url, "internal", *site.admin)
    await expect(page).to_have_url(re.compile(r"/federation$"))
    target = f"{site.url}/federation/{quote(external, safe='')}/reset"
    without = await page.request.post(target, form={"x": "1"}, max_redirects=0)
    assert without.status == 403
    wrong = await page.request.post(target, form={"csrf_token": "forged"}, max_redirects=0)
    assert wrong.status == 403
    logout = await page.request.post(f"{site.url}/logout", form={"x": "1"}, max_redirects=0)
    assert logout.status == 403
    bodiless = await page.request.post(f"{site.url}/logout", max_redirects=0)
    assert bodiless.status == 415  # only the pages' own urlencoded forms are accepted
    # The session still works: the refused logout did nothing.
    await page.goto(f"{site.url}/federation")
    await expect(page).to_have_url(re.compile(r"/federation$"))


async def test_markup_is_escaped(site: Site, page: Page) -> None:
    await log_in(page, site.url, "internal", *site.admin)
    await page.goto(f"{site.url}/federation?q={quote(MARKUP)}")
    await expect(page.get_by_role("status").first).to_contain_text(MARKUP)
    await expect(page.locator("img")).to_have_count(0)
    await page.goto(f"{site.url}/rooms")
    await expect(page.get_by_role("table")).to_contain_text(site.room_name)
    await expect(page.locator("img")).to_have_count(0)


async def test_cookie_flags_and_no_token_in_the_browser(site: Site, page: Page) -> None:
    await log_in(page, site.url, "internal", *site.admin)
    await expect(page).to_have_url(re.compile(r"/federation$"))
    (cookie,) = await page.context.cookies()
    assert cookie["name"] == "__Host-homeport_session"  # the pre-login cookie is gone
    assert cookie["httpOnly"] is True
    assert cookie["secure"] is True
    assert cookie["sameSite"] == "Strict"
    service = json.loads(site.running.layout.homeserver("internal").service_account.read_text())
    html = await page.content()
    assert service["access_token"] not in html
    assert "syt_" not in html  # Synapse access tokens start so


async def test_external_next_redirect_is_refused(site: Site, page: Page) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        await page.context.clear_cookies()
        await page.goto(f"{site.url}/login?next={quote(target, safe='')}")
        await page.get_by_label("Matrix username").fill(site.admin[0])
        await page.get_by_label("Password").fill(site.admin[1])
        await page.get_by_role("button", name="Log in").click()
        await expect(page).to_have_url(f"{site.url}/federation")
    await page.context.clear_cookies()
    await page.goto(f"{site.url}/login?next={quote('/rooms?q=x', safe='')}")
    await page.get_by_label("Matrix username").fill(site.admin[0])
    await page.get_by_label("Password").fill(site.admin[1])
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(f"{site.url}/rooms?q=x")


async def test_logout_ends_the_session(site: Site, page: Page) -> None:
    await log_in(page, site.url, "internal", *site.admin)
    await expect(page).to_have_url(re.compile(r"/federation$"))
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.goto(f"{site.url}/federation")
    await expect(page).to_have_url(re.compile(r"/login\?next="))


IDLE_S = 9


async def test_sessions_expire_when_idle(site: Site, browser: Browser, tmp_path: Path) -> None:
    """`homeport admin` serves the website alone; here with a 9-second idle timeout: long
    enough that a slow machine's login (a POST and its redirects) never outlasts it, short
    enough to wait for."""
    port = free_port_run(1)
    config = tmp_path / "homeport.yaml"
    config.write_text(site.running.config_path.read_text())

    def short_sessions(data: Any) -> None:
        data["data_dir"] = str(site.running.deployment.data_dir)
        data["admin"]["port"] = port
        data["admin"]["session_idle_minutes"] = IDLE_S / 60

    edit_yaml(config, short_sessions)
    process = subprocess.Popen(
        [*HOMEPORT, "admin", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"https://localhost:{port}"
        context = client_ssl_context(site.running.deployment)
        deadline = time.monotonic() + 30
        while True:
            try:
                async with httpx.AsyncClient(verify=context) as http:
                    if (await http.get(f"{url}/health")).status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "homeport admin did not start"
            await asyncio.sleep(0.2)
        page = await (await browser.new_context()).new_page()
        await log_in(page, url, "internal", *site.admin)
        await expect(page).to_have_url(re.compile(r"/federation$"))
        await asyncio.sleep(IDLE_S + 1)  # idle since the last request, which the page made
        await page.goto(f"{url}/rooms")
        await expect(page).to_have_url(re.compile(r"/login\?next=.*expired=1"))
        await expect(page.get_by_role("status")).to_contain_text("session ended")
    finally:
        process.terminate()
        process.wait(10)


async def test_room_counts_endpoint_of_the_homeport_module_is_for_admins_only(site: Site) -> None:
    """The module answers a page of destinations in one request; only server admins ask."""
    deployment = site.running.deployment
    internal = deployment.homeservers["internal"]
    external = deployment.homeservers["external"].server_name
    context = client_ssl_context(deployment)
    root = await _token(deployment, "internal", *site.admin)
    alice = await _token(deployment, "internal", *site.alice)
    url = f"{internal.base_url}/_homeport/v1/destination_room_counts"
    params = [("destination", external), ("destination", "nowhere.example.org")]
    body = await _call(context, "GET", url, root, params=params)
    # External has every event by now: nothing undelivered.
    assert body == {"counts": {external: 1, "nowhere.example.org": 0}, "undelivered": {}}
    async with httpx.AsyncClient(verify=context) as http:
        refused = await http.get(url, params=params, headers={"Authorization": f"Bearer {alice}"})
        anonymous = await http.get(url, params=params)
    assert refused.status_code == 403
    assert anonymous.status_code == 401


async def test_health_and_metrics(site: Site, page: Page) -> None:
    await log_in(page, site.url, "internal", *site.admin)
    await expect(page).to_have_url(re.compile(r"/federation$"))
    context = client_ssl_context(site.running.deployment)
    async with httpx.AsyncClient(verify=context) as http:
        health = await http.get(f"{site.url}/health")
        metrics = await http.get(f"{site.url}/metrics")
    assert health.json() == {"status": "ok"}
    assert 'homeport_admin_requests_total{route="federation",status="200"}' in metrics.text
    assert "homeport_admin_render_seconds_bucket" in metrics.text


async def test_odd_csrf_tokens_and_cross_site_links(site: Site, page: Page) -> None:
    await log_in(page, site.url, "internal", *site.admin)
    await expect(page).to_have_url(re.compile(r"/federation$"))
    odd = await page.request.post(
        f"{site.url}/logout",
        form={"x": "1"},
        headers={"X-CSRF-Token": "\u00e9t\u00e9"},
        max_redirects=0,
    )
    assert odd.status == 403
    # A link from another site arrives without the SameSite=Strict cookie: the site
    # reloads itself instead of starting a new session over the working one.
    context = client_ssl_context(site.running.deployment)
    async with httpx.AsyncClient(verify=context) as http:
        arriving = await http.get(
            f"{site.url}/federation", headers={"Sec-Fetch-Site": "cross-site"}
        )
    assert arriving.status_code == 200
    assert "set-cookie" not in arriving.headers
    assert 'http-equiv="refresh"' in arriving.text
    await page.goto(f"{site.url}/federation")
    await expect(page).to_have_url(re.compile(r"/federation$"))


async def test_record_a_room_from_the_rooms_page_and_search_the_audit_page(
    site: Site, page: Page
) -> None:
    deployment = site.running.deployment
    internal = deployment.homeservers["internal"]
    context = client_ssl_context(deployment)
    alice = await _token(deployment, "internal", *site.alice)
    name = f"Board {secrets.token_hex(3)}"
    created = await _call(
        context,
        "POST",
        f"{internal.base_url}/_matrix/client/v3/createRoom",
        alice,
        json={"preset": "private_chat", "name": name},
    )
    room_id = str(created["room_id"])

    async def say(body: str) -> None:
        await _call(
            context,
            "PUT",
            f"{internal.base_url}/_matrix/client/v3/rooms/{quote(room_id)}/send/"
            f"m.room.message/{secrets.token_hex(4)}",
            alice,
            json={"msgtype": "m.text", "body": body},
        )

    await log_in(page, site.url, "internal", *site.admin)
    await expect(page).to_have_url(re.compile(r"/federation$"))
    # Without the session's CSRF token, nothing is added.
    refused = await page.request.post(
        f"{site.url}/audit/add", form={"room": room_id}, max_redirects=0
    )
    assert refused.status == 403

    await page.goto(f"{site.url}/rooms?q={quote(name)}")
    row = page.get_by_role("row").filter(has_text=name)
    await row.get_by_role("button", name="Record").click()
    await expect(page).to_have_url(re.compile(r"/audit\?done=added"))
    await expect(page.get_by_role("status")).to_contain_text("Recording started")
    recorded = page.locator("#audited").get_by_role("row").filter(has_text=room_id)
    await expect(recorded).to_contain_text("@root:")  # added by the logged-in admin

    # A room created on external cannot be recorded: the Rooms page says so.
    await page.goto(f"{site.url}/rooms")
    await expect(page.get_by_role("row").filter(has_text=site.room_id)).to_contain_text(
        "created elsewhere"
    )
    await page.goto(f"{site.url}/audit")
    await page.get_by_label("Record a room").fill(site.room_id)
    await page.get_by_role("button", name="Add the audit bot").click()
    await expect(page.get_by_role("alert")).to_contain_text(
        f"created on {deployment.homeservers['external'].server_name}"
    )

    await say(f"audited words {MARKUP}")
    await page.goto(f"{site.url}/audit")
    deadline = time.monotonic() + 30
    while True:
        await page.get_by_label("Text").fill("audited words")
        await page.get_by_role("button", name="Search").click()
        results = page.locator("table.events")
        if await results.get_by_text(f"audited words {MARKUP}").count() or (
            time.monotonic() > deadline
        ):
            break
        await asyncio.sleep(0.5)
    await expect(results).to_contain_text(f"audited words {MARKUP}")  # as text, not markup
    if os.environ.get("UPDATE_SCREENSHOTS"):
        await page.screenshot(path=DOCS_IMAGES / "audit.png", full_page=True)
    await results.get_by_role("link").first.click()
    await expect(page.get_by_role("heading", name="Recorded event")).to_be_visible()
    await expect(page.locator("dl.facts")).to_contain_text(room_id)

    # Renaming the bot is undone, and the Audit page lists it under Integrity.
    bot = internal.audit_user_id
    assert bot is not None
    async with service_client(deployment, "internal") as admin:
        await admin.client.request(
            "PUT", f"/_synapse/admin/v2/users/{quote(bot)}", json={"displayname": "Not a bot"}
        )
    integrity = page.locator("#integrity")
    deadline = time.monotonic() + 30
    while True:
        await page.goto(f"{site.url}/audit")
        if await integrity.get_by_text(room_id).count() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    await expect(integrity).to_contain_text(room_id)
    await expect(integrity).to_contain_text("Homeport restored them")

    # Stop recording from the Audit page; the room leaves the list.
    await page.goto(f"{site.url}/audit")
    await (
        page.get_by_role("row")
        .filter(has_text=room_id)
        .get_by_role("button", name="Stop recording")
        .click()
    )
    await expect(page.get_by_role("status")).to_contain_text("Recording stopped")
