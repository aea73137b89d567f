"""An outage on the configuration Homeport ships (no relaxed test settings).

`homeport init` exactly as users get it: Homeport's rate limits and federation
retry settings, Synapse's real backoff. External stops while an internal user
keeps talking to it; the Federation tab, `homeport status` and `/metrics`
must say so within a minute, before Synapse itself records a failure; when
external is back, every message arrives on its own within the time the
rendered settings promise; Reset connection still works when pressed earlier.

The waits below are bounds taken from the settings (`homeport.synapse.
backoff.promise`) plus a margin for a loaded machine, never speed targets;
the times measured are printed for the record.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Page, expect

from homeport.admin.delivery import REFRESH_S
from homeport.config.federation import FederationRetries
from homeport.policy.backoff import NOT_DELIVERING_AFTER_S, RetryPromise, promise
from homeport.trust import client_ssl_context
from tests.browser import chromium, log_in
from tests.harness import (
    RunningDeployment,
    access_token,
    homeport,
    init_deployment,
    running_deployment,
    status_json,
)

pytestmark = pytest.mark.e2e

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
MARGIN_S = 45.0  # a loaded 2-core machine, page loads, `homeport start`
SEND_EVERY_S = 5.0
WHEN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


class Room:
    """One room on external that alice (internal) and bob (external) share."""

    def __init__(self, context: ssl.SSLContext, internal: str, external: str) -> None:
        self.http = httpx.AsyncClient(verify=context, timeout=30)
        self.internal, self.external = internal, external
        self.room_id = ""
        self.alice = self.bob = ""

    async def call(self, method: str, url: str, token: str, **kwargs: Any) -> Any:
        response = await self.http.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    async def say(self, body: str) -> None:
        await self.call(
            "PUT",
            f"{self.internal}/_matrix/client/v3/rooms/{quote(self.room_id)}/send/"
            f"m.room.message/{secrets.token_hex(6)}",
            self.alice,
            json={"msgtype": "m.text", "body": body},
        )

    async def heard_by_bob(self) -> set[str]:
        messages = await self.call(
            "GET",
            f"{self.external}/_matrix/client/v3/rooms/{quote(self.room_id)}/messages",
            self.bob,
            params={"dir": "b", "limit": 200},
        )
        return {str(e.get("content", {}).get("body")) for e in messages["chunk"]}


async def _until(
    what: str, deadline: float, check: Any, every: float = 2.0, started: float | None = None
) -> float:
    """Poll `check` until it is true; the seconds it took (from `started`)."""
    begin = started if started is not None else time.monotonic()
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {deadline - begin:.0f} s"
        await asyncio.sleep(every)
    return time.monotonic() - begin


class Talker:
    """Alice keeps sending into the room every few seconds, as people do."""

    def __init__(self, room: Room, label: str) -> None:
        self.room, self.label = room, label
        self.sent: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            body = f"{self.label} {len(self.sent)} {secrets.token_hex(3)}"
            await self.room.say(body)
            self.sent.append(body)
            await asyncio.sleep(SEND_EVERY_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        assert self._task is not None
        if self._task.done():
            self._task.result()  # a failed send fails the test
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Scene(NamedTuple):
    running: RunningDeployment
    url: str  # the admin website
    room: Room
    page: Page  # logged in as internal's admin
    figures: RetryPromise  # what internal's retry settings promise
    external: str  # external's server name


@pytest.fixture
def own_shipped(tmp_path: Path) -> Iterator[RunningDeployment]:
    """A starter deployment of its own: the outages here would disturb a shared one."""
    with running_deployment(init_deployment(tmp_path)) as running:
        yield running


async def _shared_room(running: RunningDeployment, passwords: dict[str, str]) -> Room:
    deployment = running.deployment
    internal = deployment.homeservers["internal"]
    external = deployment.homeservers["external"]
    room = Room(client_ssl_context(deployment), internal.base_url, external.base_url)
    room.alice = (await access_token(deployment, "internal", "alice", passwords["alice"]))[0]
    room.bob = (await access_token(deployment, "external", "bob", passwords["bob"]))[0]
    created = await room.call(
        "POST",
        f"{external.base_url}/_matrix/client/v3/createRoom",
        room.bob,
        json={"preset": "public_chat", "name": "Outage"},
    )
    room.room_id = str(created["room_id"])
    await room.call(
        "POST",
        f"{internal.base_url}/_matrix/client/v3/join/{quote(room.room_id)}",
        room.alice,
        params={"server_name": external.server_name},
        json={},
    )
    await room.say("before the outage")

    async def heard() -> bool:
        return "before the outage" in await room.heard_by_bob()

    await _until("the first message", time.monotonic() + 60, heard, every=0.5)
    return room


async def test_the_federation_tab_tells_the_truth_on_the_shipped_settings(
    own_shipped: RunningDeployment,
) -> None:
    running = own_shipped
    config = str(running.config_path)
    deployment = running.deployment
    assert deployment.admin is not None
    for hs in deployment.homeservers.values():  # exactly what `homeport init` ships
        assert hs.federation_retries == FederationRetries()
        assert hs.synapse == {}
    figures = promise(deployment.homeservers["internal"].federation_retries)
    passwords = {name: secrets.token_urlsafe(12) for name in ("root", "alice", "bob")}
    for name, user, flags in (
        ("internal", "root", ["--admin"]),
        ("internal", "alice", []),
        ("external", "bob", []),
    ):
        homeport("user", "create", "-c", config, name, user, "--password", passwords[user], *flags)
    room = await _shared_room(running, passwords)
    url = deployment.admin.url
    external = deployment.homeservers["external"].server_name
    async with chromium(running.layout.admin_tls_certificate, running.layout.ca_certificate) as b:
        context = await b.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        await log_in(page, url, "internal", "root", passwords["root"])
        await expect(page).to_have_url(re.compile(r"/federation$"))
        try:
            scene = Scene(running, url, room, page, figures, external)
            await _outage_recovering_on_its_own(scene)
            await _outage_with_reset_pressed_early(scene)
            await _outage_ended_by_restart(scene)
        finally:
            await context.close()
            await room.http.aclose()


async def _outage_recovering_on_its_own(scene: Scene) -> None:
    running, url, room, page, figures, external = scene
    config = str(running.config_path)
    homeport("stop", "-c", config, "external")
    started = time.monotonic()
    talker = Talker(room, "during the outage")
    talker.start()
    try:
        row = page.get_by_role("row").filter(has_text=external)

        async def tab_says_not_delivering() -> bool:
            await page.goto(f"{url}/federation")
            return "Not delivering" in await row.inner_text()

        took = await _until(
            "the tab shows external as not delivering",
            started + NOT_DELIVERING_AFTER_S + MARGIN_S,
            tab_says_not_delivering,
            started=started,
        )
        print(f"\nNot delivering on the tab after {took:.1f} s")
        cells = row.get_by_role("cell")
        await expect(cells.nth(2)).to_contain_text(WHEN)  # Undelivered since
        await expect(cells.nth(2)).to_contain_text("in 1 room")
        await expect(page.locator(".alert")).to_contain_text(f"{external}, undelivered since")
        if os.environ.get("UPDATE_SCREENSHOTS"):
            await page.screenshot(path=DOCS_IMAGES / "federation-outage.png", full_page=True)

        federation = status_json(running.config_path)["homeservers"]["internal"]["federation"]
        assert federation["not_delivering"] == 1
        assert federation["undelivered"][0]["destination"] == external
        assert federation["undelivered"][0]["waiting_seconds"] >= NOT_DELIVERING_AFTER_S
        gauge = 'homeport_federation_not_delivering_destinations{homeserver="internal"} 1.0'

        async def metric_says_not_delivering() -> bool:
            async with httpx.AsyncClient(verify=client_ssl_context(running.deployment)) as http:
                return gauge in (await http.get(f"{url}/metrics")).text

        # The gauges come from a snapshot taken every REFRESH_S, not from each page.
        await _until(
            "the metric counts external as not delivering",
            time.monotonic() + REFRESH_S + MARGIN_S,
            metric_says_not_delivering,
            every=1.0,
        )

        destination_url = f"{url}/federation/{quote(external, safe='')}"
        facts = page.locator("dl.facts")

        async def failure_recorded() -> bool:
            await page.goto(destination_url)
            return await facts.locator("dt:has-text('First failed attempt') + dd time").count() > 0

        took = await _until(
            "Synapse records a failed attempt",
            started + figures.failure_recorded_within + MARGIN_S,
            failure_recorded,
            every=1.0,
            started=started,
        )
        promised = figures.failure_recorded_within
        print(f"First failed attempt after {took:.1f} s (the settings promise {promised:.0f} s)")
        await expect(facts).to_contain_text("Not delivering")
        await expect(facts.locator("dt:has-text('Last failed attempt') + dd")).to_contain_text(WHEN)
        # The backoff (30 s) has just begun: the next attempt is a moment to come.
        await expect(facts.locator("dt:has-text('Next attempt') + dd")).to_contain_text(
            re.compile(r"\(in |due")
        )
        await expect(page.get_by_role("button", name="Reset connection")).to_be_visible()
        # `homeport status` counts the recorded failure too.
        federation = status_json(running.config_path)["homeservers"]["internal"]["federation"]
        assert federation["failing"] == 1, federation

        homeport("start", "-c", config, "external", timeout=240)
        back = time.monotonic()
    finally:
        await talker.stop()
    assert talker.sent, "nothing was sent during the outage"

    async def everything_arrived() -> bool:
        return set(talker.sent) <= await room.heard_by_bob()

    took = await _until(
        "every message sent during the outage arrives",
        back + figures.recovered_within + MARGIN_S,
        everything_arrived,
        started=back,
    )
    promised = figures.recovered_within
    print(
        f"{len(talker.sent)} messages arrived {took:.1f} s after external was back, "
        f"nobody pressing anything (the settings promise {promised:.0f} s)"
    )

    async def tab_says_working() -> bool:
        await page.goto(f"{url}/federation")
        return "Working" in await page.get_by_role("row").filter(has_text=external).inner_text()

    deadline = back + figures.recovered_within + MARGIN_S
    await _until("the tab says Working again", deadline, tab_says_working, started=back)
    assert (
        status_json(running.config_path)["homeservers"]["internal"]["federation"]["undelivered"]
        == []
    )


async def _stop_until_backing_off(scene: Scene, body: str) -> None:
    """Stop external, say `body` on internal, wait until Synapse backs off (Reset offered)."""
    running, url, room, page, figures, external = scene
    homeport("stop", "-c", str(running.config_path), "external")
    started = time.monotonic()
    await room.say(body)

    async def reset_offered() -> bool:
        await page.goto(f"{url}/federation/{quote(external, safe='')}")
        return await page.get_by_role("button", name="Reset connection").count() > 0

    deadline = started + figures.failure_recorded_within + MARGIN_S
    await _until("Synapse records a failure", deadline, reset_offered, every=1.0, started=started)


async def _arrives(room: Room, body: str, back: float) -> float:
    async def arrived() -> bool:
        return body in await room.heard_by_bob()

    return await _until("the message arrives", back + MARGIN_S, arrived, every=0.5, started=back)


async def _outage_with_reset_pressed_early(scene: Scene) -> None:
    running, url, room, page, _, external = scene
    body = f"reset pressed early {secrets.token_hex(3)}"
    await _stop_until_backing_off(scene, body)
    homeport("start", "-c", str(running.config_path), "external", timeout=240)
    back = time.monotonic()
    destination_url = f"{url}/federation/{quote(external, safe='')}"
    await page.goto(destination_url)
    await page.get_by_role("button", name="Reset connection").click()  # long before 30 s
    await expect(page.get_by_role("status")).to_contain_text("Connection reset")
    await expect(page.locator("dl.facts")).not_to_contain_text("Failing")
    # Who reset it is recorded in Homeport's store and shown on the page.
    await expect(page.locator(".last-action")).to_contain_text("by @root:")
    took = await _arrives(room, body, back)
    print(f"After Reset connection the message arrived {took:.1f} s after external was back")

    async def working() -> bool:
        await page.goto(destination_url)
        return "Working" in await page.locator("dl.facts").inner_text()

    await _until("the destination says Working", time.monotonic() + MARGIN_S, working)


async def _outage_ended_by_restart(scene: Scene) -> None:
    """`homeport restart external` brings it back and has internal retry it at once."""
    body = f"restart ends it {secrets.token_hex(3)}"
    await _stop_until_backing_off(scene, body)
    restarted = homeport("restart", "-c", str(scene.running.config_path), "external", timeout=240)
    back = time.monotonic()
    assert "internal was backing off from external: reset, it retries now." in restarted.stdout
    took = await _arrives(scene.room, body, back)
    print(f"After homeport restart the message arrived {took:.1f} s later")
