"""The website's pages where the test is about the page, not about Synapse.

The homeservers are a recorded fake: answers Synapse 1.163 gave for a
destination it was backing off from (recorded/failing_destination.json),
replayed through the same typed models. The clock is fixed, so times read
the same every run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from homeport.admin.api import HomeserverAdmin, NotAdminError
from homeport.admin.app import create_app
from homeport.admin.views.federation import COLUMNS
from homeport.capabilities import website_pages
from homeport.capability import RoomsColumn, WebsitePages
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment_text
from homeport.config.policy import Policy
from homeport.config.starter import starter_text
from homeport.policy.surfaces import expectations
from homeport.synapse.admin_api import DestinationListing, DestinationQuery
from homeport.synapse.api import SynapseApiError
from homeport.synapse.models import (
    Destination,
    DestinationPage,
    DestinationRoomsPage,
    MixedRoomsReport,
    Room,
    RoomPage,
    Undelivered,
)
from tests.admin.extra_tab import website as extra_tab
from tests.admin.website import browser, csrf_token, log_in
from tests.policy.test_statements import policies

PAGES = website_pages()  # the capabilities' tabs, as `up` serves them
RECORDED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "recorded" / "failing_destination.json").read_text()
)
FAILING = RECORDED["destinations"]["destinations"][0]["destination"]
LAST_FAILED_MS = RECORDED["destination"]["retry_last_ts"]
# Events have waited for it since 40 s before Synapse recorded the failure
# (its long retries); two other servers lack events too, one only just.
WAITING = Undelivered(FAILING, 2, LAST_FAILED_MS - 40_000)
OTHERS_WAITING = [
    Undelivered("slow.example.org", 1, LAST_FAILED_MS + 60_000),
    Undelivered("busy.example.org", 1, LAST_FAILED_MS + 119_000),
]


@dataclass
class FixedClock:
    now: float

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@dataclass
class RecordedAdmin:
    """Replays the recorded answers; counts the requests each page makes."""

    calls: list[str]
    fail_with: SynapseApiError | None = None
    queries: list[DestinationQuery] = field(default_factory=list)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_with is not None:
            raise self.fail_with

    async def destinations_with_counts(
        self, query: DestinationQuery, also: tuple[str, ...] = ()
    ) -> DestinationListing:
        self._call("destinations_with_counts")
        self.queries.append(query)
        page = DestinationPage.from_api(RECORDED["destinations"])
        counts = {d.destination: 1 for d in page.destinations} | dict.fromkeys(also, 0)
        # Synapse says there is more after this page: the pager must offer it.
        page = DestinationPage(page.destinations, 60, query.start + query.limit)
        waiting = (
            {FAILING: WAITING} if any(d.destination == FAILING for d in page.destinations) else {}
        )
        return DestinationListing(page, counts, waiting)

    async def facts(self, destinations: list[str]) -> tuple[dict[str, int], dict[str, Undelivered]]:
        self._call("facts")
        return dict.fromkeys(destinations, 1), {FAILING: WAITING} if FAILING in destinations else {}

    async def destination(self, destination: str) -> Destination | None:
        self._call("destination")
        found = destination == FAILING
        return Destination.from_api(RECORDED["destination"]) if found else None

    async def destination_rooms(
        self, destination: str, start: int = 0, limit: int = 1
    ) -> DestinationRoomsPage:
        self._call("destination_rooms")
        return DestinationRoomsPage.from_api(RECORDED["destination_rooms"])

    async def room(self, room_id: str) -> Room | None:
        self._call("room")
        return Room.from_api(RECORDED["room"])

    async def rooms(self, start: int = 0, limit: int = 50, search: str = "") -> RoomPage:
        self._call("rooms")
        return RoomPage.from_api(RECORDED["rooms"])

    async def reset_connection(self, destination: str) -> bool:
        self._call("reset_connection")
        return True

    async def mixed_rooms(self, allowed: list[str]) -> MixedRoomsReport:
        self._call("mixed_rooms")
        return MixedRoomsReport([], 0, [])


@dataclass
class RecordedHomeservers:
    """Logs `root` in with the password "right"; anyone else is not an admin."""

    calls: list[str] = field(default_factory=list)
    logged_out: list[str] = field(default_factory=list)
    fail_with: SynapseApiError | None = None
    admins: set[str] = field(default_factory=lambda: {"root"})
    issued: int = 0
    queries: list[DestinationQuery] = field(default_factory=list)
    used: list[str] = field(default_factory=list)  # which homeserver each page asked

    async def login(self, name: str, user: str, password: str) -> tuple[str, str]:
        if password != "right":
            raise SynapseApiError(403, "M_FORBIDDEN", "Invalid username or password")
        if user not in self.admins:
            raise NotAdminError(f"@{user}:{name}")
        self.issued += 1
        return f"@{user}:{name}", f"token-{self.issued}"

    async def is_admin(self, name: str, token: str, user_id: str) -> bool:
        self.calls.append(f"is_admin {user_id}")
        return user_id.split(":")[0][1:] in self.admins

    async def logout(self, name: str, token: str) -> None:
        self.logged_out.append(token)

    def admin(self, name: str, token: str) -> HomeserverAdmin:
        self.used.append(name)
        return RecordedAdmin(self.calls, self.fail_with, self.queries)

    async def undelivered(self, name: str) -> tuple[list[Undelivered], int]:
        self.calls.append(f"undelivered {name}")
        if name == "external":  # a homeserver that does not answer
            raise SynapseApiError(502, "M_UNKNOWN", "Bad gateway")
        return [WAITING, *OTHERS_WAITING], 3

    async def directory_login(self, name: str) -> dict[str, Any] | None:
        return None  # the starter has no group sync

    async def aclose(self) -> None:
        pass


STARTER, _ = load_deployment_text(starter_text(), Path("homeport.yaml"))
# Two minutes after the recorded failure: the retry interval (1 s) has passed.
CLOCK = FixedClock(LAST_FAILED_MS / 1000 + 120)


@pytest.fixture
async def site() -> AsyncIterator[tuple[RecordedHomeservers, Any]]:
    api = RecordedHomeservers()
    async with browser(create_app(STARTER, api, CLOCK, pages=PAGES)) as client:
        assert (await log_in(client, "internal", "root", "right")).status_code == 303
        api.calls.clear()
        yield api, client


async def test_a_failing_destination_with_its_three_moments(site: Any) -> None:
    api, client = site
    page = await client.get("/federation")
    assert page.status_code == 200
    row = re.search(rf"<tr>\s*<td><a[^>]*>{re.escape(FAILING)}</a>.*?</tr>", page.text, re.S)
    assert row, page.text
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    # Events have waited 160 s: not delivering, whatever Synapse's backoff says.
    assert "Not delivering" in cells[1]
    assert "(3 min ago)" in cells[2]
    assert "in 2 rooms" in cells[2]
    for cell in cells[2:5]:  # undelivered since, first failed, last failed
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", cell), cell
    assert "(2 min ago)" in cells[4]
    # The 1 s retry interval is over: the next attempt is due, not "2 min ago".
    assert "due" in cells[5]
    assert cells[6].strip() == "1"
    # The summary names every late server, this page or not; busy.example.org's
    # oldest event is a second old and is not late.
    alert = re.search(r'<div class="alert" role="alert">(.*?)</div>', page.text, re.S)
    assert alert, page.text
    assert "2 servers are not receiving events" in alert.group(1)
    assert FAILING in alert.group(1)
    assert "slow.example.org" in alert.group(1)
    assert "busy.example.org" not in alert.group(1)
    # One request to Synapse, as the admin, for the page and every fact on it,
    # the whitelist's quiet servers included; the alert comes from the
    # snapshot of every homeserver's delivery, read at most every 10 s.
    assert sorted(api.calls) == [
        "destinations_with_counts",
        "undelivered external",
        "undelivered internal",
    ]
    await client.get("/federation")
    assert api.calls.count("destinations_with_counts") == 2
    assert api.calls.count("undelivered internal") == 1
    assert 'href="/federation?from=25' in page.text  # Synapse's next token


async def test_the_destination_page_offers_a_reset_while_synapse_backs_off(site: Any) -> None:
    api, client = site
    page = await client.get(f"/federation/{FAILING}")
    assert page.status_code == 200
    assert "Not delivering" in page.text
    assert re.search(r"has not received events from internal since <time", page.text)
    assert "Reset connection" in page.text
    assert "Lobby &lt;b&gt;" in page.text  # the room's name, escaped
    answer = await client.post(
        f"/federation/{FAILING}/reset", data={"csrf_token": csrf_token(page.text)}
    )
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        f"/federation/{quote(FAILING, safe='')}?reset=1",
    )
    assert "reset_connection" in api.calls


async def test_metrics_tell_an_alert_who_is_not_delivering(site: Any) -> None:
    api, client = site
    text = (await client.get("/metrics")).text
    assert 'homeport_federation_not_delivering_destinations{homeserver="internal"} 2.0' in text
    assert 'homeport_federation_undelivered_destinations{homeserver="internal"} 3.0' in text
    age = (
        "homeport_federation_undelivered_age_seconds"
        f'{{destination="{FAILING}",homeserver="internal"}} 160.0'
    )
    assert age in text
    # A homeserver that does not answer has no figures, and says so.
    assert 'homeport_federation_delivery_known{homeserver="external"} 0.0' in text
    assert 'homeport_federation_undelivered_destinations{homeserver="external"}' not in text
    # /metrics needs no login: scrapes in a burst reach Synapse once per homeserver.
    for _ in range(20):
        await client.get("/metrics")
    assert sorted(c for c in api.calls if c.startswith("undelivered")) == [
        "undelivered external",
        "undelivered internal",
    ]


async def test_a_synapse_error_is_a_502_page(site: Any) -> None:
    api, client = site
    api.fail_with = SynapseApiError(500, "M_UNKNOWN", "Internal server error")
    page = await client.get("/rooms")
    assert page.status_code == 502
    assert "The homeserver answered with an error" in page.text
    assert page.headers["x-frame-options"] == "DENY"


async def test_login_refusals_and_logout(site: Any) -> None:
    api, client = site
    page = await client.get("/federation")
    answer = await client.post("/logout", data={"csrf_token": csrf_token(page.text)})
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    assert api.logged_out, "logging out ends the Matrix token too"
    assert (await client.get("/federation")).status_code == 303
    assert "not a server admin" in (await log_in(client, "internal", "alice", "right")).text
    assert "Wrong username" in (await log_in(client, "internal", "root", "wrong")).text


def _with_policies(base: Deployment, chosen: dict[str, dict[str, Any]]) -> Deployment:
    homeservers = {
        name: hs.model_copy(update={"policy": Policy.model_validate(chosen[name])})
        for name, hs in base.homeservers.items()
    }
    return base.model_copy(update={"homeservers": homeservers})


async def test_the_rendered_policy_page_says_what_verify_expects() -> None:
    """Policy combinations drawn from the full table, rendered as HTML, read back."""
    rng = random.Random(20261126)
    internal, external = list(policies("internal")), list(policies("external"))
    combinations = [(rng.choice(internal), rng.choice(external)) for _ in range(60)]
    for first, second in itertools.chain([(internal[0], external[0])], combinations):
        deployment = _with_policies(STARTER, {"internal": first, "external": second})
        async with browser(
            create_app(deployment, RecordedHomeservers(), CLOCK, pages=PAGES)
        ) as client:
            for name, peer in (("internal", "external"), ("external", "internal")):
                await log_in(client, name, "root", "right")
                await client.post(
                    "/switch",
                    data={
                        "homeserver": name,
                        "csrf_token": csrf_token((await client.get("/policy")).text),
                    },
                )
                page = await client.get("/policy")
                found = re.findall(
                    r"<h2>What users of (\S+) see of (\S+)</h2>(.*?)</section>", page.text, re.S
                )
                sections = {(viewer, target): body for viewer, target, body in found}
                for viewer, target in ((peer, name), (name, peer)):
                    shown = dict(
                        re.findall(
                            r'data-surface="(\w+)" data-value="(\w+)"', sections[(viewer, target)]
                        )
                    )
                    assert shown == expectations(deployment, viewer, target, None), (
                        first,
                        second,
                    )


async def test_anonymous_requests_store_nothing_and_push_no_admin_out() -> None:
    api = RecordedHomeservers()
    app = create_app(STARTER, api, FixedClock(CLOCK.now), pages=PAGES)
    site = app.state.site
    async with browser(app) as admin:
        assert (await log_in(admin, "internal", "root", "right")).status_code == 303
        async with browser(app, "203.0.113.9") as stranger:
            for _ in range(300):
                stranger.cookies.clear()
                assert (await stranger.get("/federation")).status_code == 303
                assert (await stranger.get("/login")).status_code == 200
        assert len(site.sessions) == 1  # the admin's, and nothing for the stranger
        assert (await admin.get("/federation")).status_code == 200


async def test_a_forged_pre_login_cookie_cannot_log_in() -> None:
    async with browser(
        create_app(STARTER, RecordedHomeservers(), FixedClock(CLOCK.now), pages=PAGES)
    ) as client:
        form = await client.get("/login")
        token = csrf_token(form.text)
        client.cookies.set("__Host-homeport_login", f"{token}.{'0' * 64}", domain="admin.test")
        answer = await client.post(
            "/login",
            data={"csrf_token": token, "homeserver": "internal", "username": "root",
                  "password": "right"},
        )  # fmt: skip
        assert answer.status_code == 403


async def test_logins_are_throttled_per_address_and_per_user() -> None:
    api = RecordedHomeservers()
    clock = FixedClock(CLOCK.now)
    app = create_app(STARTER, api, clock, pages=PAGES)
    async with browser(app, "198.51.100.7") as guesser:
        for _ in range(10):
            assert (await log_in(guesser, "internal", f"u{_}", "guess")).status_code == 400
        throttled = await log_in(guesser, "internal", "root", "right")
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "30"
        assert "Too many login attempts" in throttled.text
        clock.now += 30
        assert (await log_in(guesser, "internal", "root", "right")).status_code == 303
    # Five wrong passwords for root, from five addresses: root's name is throttled.
    for n in range(5):
        async with browser(app, f"192.0.2.{n}") as other:
            assert (await log_in(other, "internal", "root", "wrong")).status_code == 400
    async with browser(app, "192.0.2.99") as fresh:
        answer = await log_in(fresh, "internal", "ROOT", "right")
        assert (answer.status_code, answer.headers["retry-after"]) == (429, "60")
        # Other admins and other homeservers are not affected.
        assert (await log_in(fresh, "external", "root", "right")).status_code == 303


async def test_a_demoted_admin_is_logged_out_within_a_minute() -> None:
    api = RecordedHomeservers()
    clock = FixedClock(CLOCK.now)
    async with browser(create_app(STARTER, api, clock, pages=PAGES)) as client:
        assert (await log_in(client, "internal", "root", "right")).status_code == 303
        assert (await client.get("/policy")).status_code == 200  # needs no Synapse call
        api.admins.discard("root")  # demoted in Synapse
        clock.now += 30
        assert (await client.get("/policy")).status_code == 200  # checked less than 60 s ago
        clock.now += 31
        answer = await client.get("/policy")
        assert (answer.status_code, answer.headers["location"]) == (
            303,
            "/login?next=%2Fpolicy&revoked=1",
        )
        assert api.logged_out == ["token-1"]
        assert "no longer accepts your login" in (await client.get(answer.headers["location"])).text


async def test_a_401_from_synapse_ends_the_session_and_its_token() -> None:
    api = RecordedHomeservers()
    async with browser(create_app(STARTER, api, FixedClock(CLOCK.now), pages=PAGES)) as client:
        assert (await log_in(client, "internal", "root", "right")).status_code == 303
        api.fail_with = SynapseApiError(401, "M_UNKNOWN_TOKEN", "Invalid access token")
        answer = await client.get("/rooms")
        assert (answer.status_code, answer.headers["location"]) == (303, "/login?revoked=1")
        assert api.logged_out == ["token-1"]
        api.fail_with = None
        assert (await client.get("/rooms")).status_code == 303  # no session any more


async def test_a_session_ends_at_its_lifetime_however_active() -> None:
    api = RecordedHomeservers()
    clock = FixedClock(CLOCK.now)
    async with browser(create_app(STARTER, api, clock, pages=PAGES)) as client:
        assert (await log_in(client, "internal", "root", "right")).status_code == 303
        for _ in range(12 * 3):  # a request every 20 minutes for 12 hours
            assert (await client.get("/policy")).status_code == 200
            clock.now += 20 * 60
        clock.now += 60  # 12 hours and a minute after the login
        answer = await client.get("/policy")
        assert answer.headers["location"] == "/login?next=%2Fpolicy&expired=1"
        assert api.logged_out == ["token-1"]


async def test_forms_are_small_and_urlencoded_before_any_parsing(site: Any) -> None:
    _, client = site
    token = csrf_token((await client.get("/federation")).text)
    multipart = await client.post(
        "/logout", data={"csrf_token": token}, files={"f": ("a.txt", b"x")}
    )
    assert multipart.status_code == 415
    huge = await client.post("/logout", data={"csrf_token": token, "pad": "x" * 20_000})
    assert huge.status_code == 413
    async with browser(create_app(STARTER, RecordedHomeservers(), CLOCK, pages=PAGES)) as anonymous:
        lying = await anonymous.post(
            "/login",
            content=b"a=1",
            headers={"content-type": "application/x-www-form-urlencoded",
                     "content-length": "999999999"},
        )  # fmt: skip
        assert lying.status_code == 413
    assert (await client.get("/federation")).status_code == 200  # still logged in


async def test_security_headers_on_every_answer(site: Any) -> None:
    _, client = site
    async with browser(create_app(STARTER, RecordedHomeservers(), CLOCK, pages=PAGES)) as anonymous:
        reload = await anonymous.get("/federation", headers={"sec-fetch-site": "cross-site"})
        login = await anonymous.get("/login")
    page = await client.get("/federation")
    for answer in (reload, login, page):
        headers = answer.headers
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["x-content-type-options"] == "nosniff"
        assert "base-uri 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
    assert 'http-equiv="refresh"' in reload.text
    assert login.headers["set-cookie"].startswith("__Host-homeport_login=")


async def test_an_idle_session_ends_with_a_note_and_its_token_logged_out() -> None:
    api = RecordedHomeservers()
    clock = FixedClock(CLOCK.now)
    async with browser(create_app(STARTER, api, clock, pages=PAGES)) as client:
        assert (await log_in(client, "internal", "root", "right")).status_code == 303
        clock.now += 31 * 60  # the starter's 30 idle minutes
        answer = await client.get("/rooms")
        assert answer.headers["location"] == "/login?next=%2Frooms&expired=1"
        assert api.logged_out == ["token-1"]


async def test_sorting_paging_and_searching_ask_synapse_for_that_page(site: Any) -> None:
    api, client = site
    page = await client.get("/federation")
    # Each column heading links to its order; the current one flips direction.
    for key in ("undelivered_since", "failure_ts", "retry_last_ts", "next_attempt"):
        assert f'href="/federation?order_by={key}&amp;dir=f&amp;q="' in page.text
    assert 'href="/federation?order_by=destination&amp;dir=b&amp;q="' in page.text
    assert 'aria-sort="ascending"' in page.text
    api.queries.clear()
    await client.get("/federation?order_by=next_attempt&dir=b&from=25&q=LOCAL")
    await client.get("/federation?order_by=password&dir=sideways&from=-3")
    first, odd = api.queries
    assert (first.order_by, first.direction, first.start, first.search) == (
        "next_attempt", "b", 25, "LOCAL",
    )  # fmt: skip
    # Nonsense in the URL becomes the default, never a parameter for Synapse.
    assert (odd.order_by, odd.direction, odd.start) == ("destination", "f", 0)
    sorted_page = await client.get("/federation?order_by=undelivered_since&dir=f")
    assert 'aria-sort="ascending"' in sorted_page.text
    assert 'href="/federation?from=25&amp;order_by=undelivered_since&amp;dir=f' in sorted_page.text


async def test_the_destinations_table_has_the_columns_the_view_defines(site: Any) -> None:
    _, client = site
    page = await client.get("/federation?order_by=next_attempt&dir=b")
    head = re.search(r"<thead>(.*?)</thead>", page.text, re.S)
    assert head, page.text
    headings = re.findall(r'<th scope="col"([^>]*)>(.*?)</th>', head.group(1), re.S)
    shown = [re.sub(r"<[^>]*>|[▲▼]", "", text).strip() for _, text in headings]
    assert shown == [column.label for column in COLUMNS]
    for (attributes, text), column in zip(headings, COLUMNS, strict=True):
        if column.order_by is None:
            assert attributes == "", column
            assert "href" not in text, column
        elif column.order_by == "next_attempt":  # the current order: its heading flips it
            assert 'aria-sort="descending"' in attributes
            assert 'href="/federation?order_by=next_attempt&amp;dir=f&amp;q="' in text
        else:
            assert attributes.strip() == ""
            link = f'href="/federation?order_by={column.order_by}&amp;dir={column.first}&amp;q="'
            assert link in text, column
    body = re.search(r"<tbody>(.*?)</tbody>", page.text, re.S)
    assert body, page.text
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    assert rows
    for row in rows:  # a cell under every heading
        assert len(re.findall(r"<td[ >]", row)) == len(COLUMNS), row


async def test_the_homeserver_switcher_scopes_every_page(site: Any) -> None:
    api, client = site
    page = await client.get("/federation")
    assert "external (localhost:8449) – log in" in page.text
    # Not logged in on external yet: the switcher asks for a login there.
    answer = await client.post(
        "/switch", data={"homeserver": "external", "csrf_token": csrf_token(page.text)}
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/login?homeserver=external")
    assert (await log_in(client, "external", "root", "right")).status_code == 303
    api.used.clear()
    await client.get("/federation")
    assert api.used == ["external"]  # the new login is the current one
    page = await client.get("/rooms")
    back = await client.post(
        "/switch",
        data={"homeserver": "internal", "csrf_token": csrf_token(page.text), "next": "/rooms"},
    )
    assert (back.status_code, back.headers["location"]) == (303, "/rooms")
    api.used.clear()
    await client.get("/rooms")
    assert api.used == ["internal"]  # both logins kept; the pages follow the switch
    unknown = await client.post(
        "/switch", data={"homeserver": "nope", "csrf_token": csrf_token(page.text)}
    )
    assert unknown.status_code == 400


async def test_a_hanging_homeserver_holds_no_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery snapshot gives up on a homeserver that does not answer."""

    class Hanging(RecordedHomeservers):
        async def undelivered(self, name: str) -> tuple[list[Undelivered], int]:
            if name == "external":
                await asyncio.sleep(3600)
            return await super().undelivered(name)

    monkeypatch.setattr("homeport.admin.delivery.READ_TIMEOUT_S", 0.2)
    async with browser(
        create_app(STARTER, Hanging(), FixedClock(CLOCK.now), pages=PAGES)
    ) as client:
        text = (await client.get("/metrics")).text
    assert 'homeport_federation_delivery_known{homeserver="external"} 0.0' in text
    assert 'homeport_federation_delivery_known{homeserver="internal"} 1.0' in text


# A tab no part of Homeport, plugged in the way a capability declares its own.
EXTRA = WebsitePages(
    "extra",
    "Extra tab",
    "tests.admin.extra_tab.website",
    rooms_column=RoomsColumn("Extra mark", "marks", "extra_cell.html"),
)


async def test_a_capabilitys_tab_and_rooms_column_plug_into_the_website() -> None:
    rooms = [r["room_id"] for r in RECORDED["rooms"]["rooms"]]
    extra_tab.MARKED.clear()
    extra_tab.MARKED.add(rooms[0])
    hidden = WebsitePages("hidden", "Hidden tab", "tests.admin.extra_tab.website", shown=_never)
    app = create_app(STARTER, RecordedHomeservers(), CLOCK, pages=[EXTRA, hidden])
    async with browser(app) as client:
        assert (await log_in(client, "internal", "root", "right")).status_code == 303
        page = await client.get("/extra")
        assert page.status_code == 200
        assert "<h1>Extra on internal</h1>" in page.text
        nav = re.search(r'<nav aria-label="Pages">(.*?)</nav>', page.text, re.S)
        assert nav, page.text
        assert '<a href="/extra" aria-current="page">Extra tab</a>' in nav.group(1)
        assert 'href="/federation"' in nav.group(1)
        # Only the tabs given: no audit bot's, and a tab not shown for this model.
        assert "/audit" not in nav.group(1)
        assert "Hidden tab" not in nav.group(1)
        assert (await client.get("/audit")).status_code == 404
        # The column, with each row's cell from the tab's template.
        listing = await client.get("/rooms")
        assert '<th scope="col">Extra mark</th>' in listing.text
        cells = re.findall(r'<span class="extra-mark">(\w+)</span>', listing.text)
        assert cells == ["marked"] + ["plain"] * (len(rooms) - 1)
        # Where its `marks` says it does not apply, no column at all.
        form = await client.get("/rooms")
        switched = await client.post(
            "/switch",
            data={"csrf_token": csrf_token(form.text), "homeserver": "external", "next": "/rooms"},
        )
        assert switched.status_code == 303
        assert (await log_in(client, "external", "root", "right")).status_code == 303
        elsewhere = await client.get("/rooms")
        assert elsewhere.status_code == 200
        assert "Extra mark" not in elsewhere.text
        assert "extra-mark" not in elsewhere.text


def _never(_deployment: Deployment) -> bool:
    return False
