"""End to end: init, up, users on both servers, a room on external joined from internal."""

from __future__ import annotations

import json
import ssl

import pytest

from homeport.synapse.api import SynapseClient
from homeport.synapse.service_account import admin_token
from tests.harness import RunningDeployment, homeport
from tests.matrix import exchange_messages

pytestmark = pytest.mark.e2e


async def test_users_on_both_servers_exchange_messages_over_federation(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    deployment = pair.deployment
    internal, external = deployment.homeservers["internal"], deployment.homeservers["external"]
    config = str(pair.config_path)

    # Users are created with the command an administrator would use.
    alice = json.loads(
        homeport("user", "create", "-c", config, "internal", "alice1", "--json").stdout
    )
    bob = json.loads(homeport("user", "create", "-c", config, "external", "bob1", "--json").stdout)
    assert alice["user_id"] == f"@alice1:{internal.server_name}"
    assert bob["user_id"] == f"@bob1:{external.server_name}"

    await exchange_messages(pair, pair_ssl, alice, bob, alias="e2e-lobby")

    # Both sent events into the shared room, so each lists the other as a
    # federation destination in Synapse's admin API, with no failure.
    for viewer, target in (("internal", external), ("external", internal)):
        hs = deployment.homeservers[viewer]
        async with SynapseClient(hs.base_url, pair_ssl) as client:
            await admin_token(client, pair.layout.homeserver(viewer))
            rows = await client.all_federation_destinations()
        by_name = {row["destination"]: row for row in rows}
        assert target.server_name in by_name, rows
        assert by_name[target.server_name]["retry_interval"] == 0
        assert by_name[target.server_name]["last_successful_stream_ordering"] is not None

    status = json.loads(homeport("status", "-c", config, "--json").stdout)
    for name in ("internal", "external"):
        entry = status["homeservers"][name]
        assert entry["running"]
        assert entry["ready"]
        assert entry["federation"]["destinations"] >= 1
        assert entry["federation"]["failing"] == 0
