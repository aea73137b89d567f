"""Federation alerts end to end: a sibling stops, its administrators are told; it comes
back, they are told again; nothing twice, nothing lost.

The deployment is `homeport init`'s as it ships (rate limits, Synapse's backoff,
Homeport's federation retries), with `alerts:` given a webhook (a receiver this
test runs, behind a bearer token) and the shortest grace and settle an
administrator may choose, so that an outage is told within a minute: the
default grace (2 min) is measured in bench/alerts.py. External is stopped with
`homeport stop external`, as an administrator would (or a crash would).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import expect

from homeport.alerts.room import ALIAS_LOCALPART, NAME
from homeport.synapse.api import SynapseClient
from homeport.trust import client_ssl_context
from tests.browser import chromium, log_in
from tests.harness import (
    RunningDeployment,
    access_token,
    edit_yaml,
    homeport,
    init_deployment,
    run_sync,
    running_deployment,
)
from tests.webhook import Call, Receiver

pytestmark = pytest.mark.e2e

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
GRACE_S = 15  # the shortest an administrator may choose: one check
SETTLE_S = 15
GUARD_S = 240  # against a hang: far beyond grace, a round (15 s) and a restart


@dataclass
class Alerting:
    running: RunningDeployment
    receiver: Receiver
    token: str
    admin: str  # a server admin of internal
    password: str
    admin_token: str

    @property
    def config(self) -> Path:
        return self.running.config_path


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerting]:
    directory = tmp_path_factory.mktemp("alerts")
    config = init_deployment(directory)
    token = secrets.token_urlsafe(24)
    token_file = directory / "webhook.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    with Receiver().running() as receiver:

        def alerts(data: Any) -> None:
            data["alerts"]["grace"] = f"{GRACE_S}s"
            data["alerts"]["settle"] = f"{SETTLE_S}s"
            data["alerts"]["webhook"] = {"url": receiver.url, "token_file": str(token_file)}

        edit_yaml(config, alerts)
        with running_deployment(config) as running:
            admin, password = run_sync(running.new_user("internal", admin=True))
            admin_token, _ = run_sync(access_token(running.deployment, "internal", admin, password))
            run_sync(_share_a_room(running, admin_token))
            yield Alerting(running, receiver, token, admin, password, admin_token)


async def _share_a_room(running: RunningDeployment, admin_token: str) -> None:
    """A room of external's that internal's admin joins (internal's own rooms never
    federate): each homeserver now has the other as a federation destination, a row
    of the Federation tab."""
    deployment = running.deployment
    context = client_ssl_context(deployment)
    bob, password = await running.new_user("external")
    bob_token, _ = await access_token(deployment, "external", bob, password)
    external = deployment.homeservers["external"]
    async with SynapseClient(external.base_url, context, bob_token) as bob_client:
        created = await bob_client.request(
            "POST", "/_matrix/client/v3/createRoom", json={"preset": "public_chat"}
        )
    room = created["room_id"]
    internal = deployment.homeservers["internal"]
    async with SynapseClient(internal.base_url, context, admin_token) as admin:
        await admin.request(
            "POST",
            f"/_matrix/client/v3/join/{quote(room)}",
            params={"server_name": external.server_name},
            json={},
        )
        # Synapse keeps a destination once it sent it an event (a join goes another way).
        await admin.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/{secrets.token_hex(4)}",
            json={"msgtype": "m.text", "body": "hello"},
        )


def _notices(call: Call, status: str) -> list[tuple[str, str]]:
    body = call.body
    if not isinstance(body, dict) or body.get("status") != status:
        return []
    return [(i["destination"], i["kind"]) for i in body["incidents"]]


async def _room_notices(alerting: Alerting) -> tuple[dict[str, Any], list[str]]:
    """Internal's administrators' room (its create event's content) and the notices in it,
    oldest first, read as the server admin the service joined."""
    deployment = alerting.running.deployment
    hs = deployment.homeservers["internal"]
    async with SynapseClient(
        hs.base_url, client_ssl_context(deployment), alerting.admin_token
    ) as client:
        alias = quote(f"#{ALIAS_LOCALPART}:{hs.server_name}")
        room = (await client.request("GET", f"/_matrix/client/v3/directory/room/{alias}"))[
            "room_id"
        ]
        room_path = f"/_matrix/client/v3/rooms/{quote(room)}"
        create = await client.request("GET", f"{room_path}/state/m.room.create/")
        name = await client.request("GET", f"{room_path}/state/m.room.name/")
        assert name == {"name": NAME}
        messages = await client.request(
            "GET", f"{room_path}/messages", params={"dir": "b", "limit": 100}
        )
    bodies = [
        e["content"]["body"]
        for e in reversed(messages["chunk"])
        if e["type"] == "m.room.message" and e["content"].get("msgtype") == "m.notice"
    ]
    return create, bodies


def test_a_stopped_sibling_is_told_once_and_its_recovery_once(alerting: Alerting) -> None:
    deployment = alerting.running.deployment
    external = deployment.homeservers["external"].server_name
    receiver = alerting.receiver
    config = str(alerting.config)

    stopped_at = time.time()
    homeport("stop", "-c", config, "external")
    # The webhook refuses the first time: the notice is sent again, not lost.
    receiver.failing = True
    refused = receiver.wait_for(lambda c: bool(_notices(c, "firing")), "for the outage", GUARD_S)
    receiver.failing = False
    firing = receiver.wait_for(
        lambda c: c.answered == 200 and bool(_notices(c, "firing")), "taken", GUARD_S
    )
    assert refused.answered == 503
    assert firing.body["id"] == refused.body["id"]  # the same notice, sent again
    assert _notices(firing, "firing") == [(external, "not_answering")]
    assert firing.headers["Authorization"] == f"Bearer {alerting.token}"
    assert firing.path == "/hook"
    (incident,) = firing.body["incidents"]
    # Told once its grace was over, not before (the bench measures how soon after).
    started = _ms(incident["started_at"])
    assert started >= stopped_at * 1000 - 1000
    assert firing.at * 1000 - started >= GRACE_S * 1000
    assert "has not answered since" in firing.body["text"]

    create, bodies = run_sync(_room_notices(alerting))
    assert create.get("m.federate") is False  # only internal's users can ever be in it
    assert len(bodies) == 1, bodies
    assert bodies[0].startswith("Federation alert on internal: 1 server")
    assert f"- {external} has not answered since" in bodies[0]

    # The service restarts mid-incident (as in a new `up`): it remembers, tells nothing new.
    homeport("stop", "-c", config, "alerts")
    homeport("start", "-c", config, "alerts")
    homeport("start", "-c", config, "external", timeout=240)
    resolved = receiver.wait_for(
        lambda c: c.answered == 200 and bool(_notices(c, "resolved")), "for the recovery", GUARD_S
    )
    assert _notices(resolved, "resolved") == [(external, "not_answering")]
    (ended,) = resolved.body["incidents"]
    assert ended["id"] == incident["id"]
    assert _ms(ended["ended_at"]) >= started
    _, bodies = run_sync(_room_notices(alerting))
    assert len(bodies) == 2, bodies
    assert bodies[1].startswith("Federation recovered on internal: 1 server")
    assert f"- {external} answers again" in bodies[1]

    # Nothing twice: one notice taken per outage and one per recovery, in all.
    taken = [c.body["id"] for c in receiver.received() if c.answered == 200]
    assert len(taken) == len(set(taken)) == 2, [c.body for c in receiver.received()]

    listed = json.loads(homeport("alerts", "list", "-c", config, "--json").stdout)
    (kept,) = [i for i in listed["incidents"] if i["id"] == incident["id"]]
    assert (kept["destination"], kept["kind"], kept["told"]) == (external, "not_answering", True)
    assert kept["ended_at"] is not None

    run_sync(_website_shows_the_incident(alerting, external))


async def _website_shows_the_incident(alerting: Alerting, external: str) -> None:
    """The Federation tab's "Last incident" column; the destination page's 30 days."""
    running = alerting.running
    assert running.deployment.admin is not None
    url = running.deployment.admin.url
    localpart = alerting.admin.split(":")[0][1:]
    async with chromium(running.layout.admin_tls_certificate, running.layout.ca_certificate) as b:
        page = await b.new_page(viewport={"width": 1280, "height": 900})
        await log_in(page, url, "internal", localpart, alerting.password)
        await page.goto(f"{url}/federation")
        await expect(page.get_by_role("columnheader", name="Last incident")).to_be_visible()
        row = page.get_by_role("row").filter(has_text=external)
        await expect(row.locator("td.incident")).to_contain_text("not answering, ended")
        await page.goto(f"{url}/federation/{quote(external, safe='')}")
        figure = page.locator("figure.timeline")
        await expect(figure).to_contain_text("1 incident in the last 30 days.")
        assert await figure.locator("rect.timeline-not-answering").count() == 1
        table = page.locator("section").filter(has_text="Incidents, last 30 days").locator("tbody")
        await expect(table.locator("tr")).to_have_count(1)
        await expect(table).to_contain_text("not answering")
        await expect(table.locator("td").nth(5)).to_have_text("yes")  # told
        await page.screenshot(path=DOCS_IMAGES / "destination-incidents.png", full_page=True)


def _ms(value: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(value).timestamp() * 1000)
