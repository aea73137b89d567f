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

from homeport.alerts.room import ALIAS_LOCALPART, NAME
from homeport.synapse.api import SynapseClient
from homeport.trust import client_ssl_context
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

GRACE_S = 30
SETTLE_S = 15
GUARD_S = 240  # against a hang: far beyond grace, a round (15 s) and a restart


@dataclass
class Alerting:
    running: RunningDeployment
    receiver: Receiver
    token: str
    admin: str  # a server admin of internal
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
            yield Alerting(running, receiver, token, admin, admin_token)


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


def _ms(value: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(value).timestamp() * 1000)
