"""The Homeport module's admin endpoints inside a real Synapse."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest

from homeport.errors import HomeportError
from homeport.synapse.service_account import service_client
from homeport.verify.probes import ServerProbe
from homeport.verify.run import wait_for_background_updates
from tests.harness import RunningDeployment, access_token
from tests.matrix import share_a_room

pytestmark = pytest.mark.e2e


async def _get(context: ssl.SSLContext, url: str, token: str | None, params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(verify=context, timeout=30) as http:
        return await http.get(url, params=params, headers=headers)


async def test_the_destinations_page_is_synapse_s_own_with_room_counts(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    await share_a_room(pair, pair_ssl)  # at least one destination
    deployment = pair.deployment
    base = deployment.homeservers["internal"].base_url
    external = deployment.homeservers["external"].server_name
    admin_id, admin_password = await pair.new_user("internal", admin=True)
    user_id, user_password = await pair.new_user("internal")
    root = (await access_token(deployment, "internal", admin_id, admin_password))[0]
    alice = (await access_token(deployment, "internal", user_id, user_password))[0]
    page_url = f"{base}/_homeport/v1/destinations"
    synapse_url = f"{base}/_synapse/admin/v1/federation/destinations"
    for params in (
        {},
        {"limit": "1"},
        {"from": "1", "limit": "1"},
        {"order_by": "retry_last_ts", "dir": "b"},
        {"destination": "LOCALHOST"},
        {"destination": "no-such-server"},
    ):
        ours = await _get(pair_ssl, page_url, root, {**params, "also": "elsewhere.example.org"})
        theirs = await _get(pair_ssl, synapse_url, root, params)
        assert (ours.status_code, theirs.status_code) == (200, 200)
        body = ours.json()
        counts = body.pop("room_counts")
        undelivered = body.pop("undelivered")
        assert body == theirs.json(), params
        # Delivery state: only listed servers, only those that lack events.
        assert set(undelivered) <= set(counts)
        for facts in undelivered.values():
            assert set(facts) == {"rooms", "since"}
            assert facts["rooms"] >= 1
        assert set(counts) == {d["destination"] for d in body["destinations"]} | {
            "elsewhere.example.org"
        }
        assert counts["elsewhere.example.org"] == 0
        if not params:
            assert counts[external] >= 1, "the shared room federates with external"
    refused = await _get(pair_ssl, page_url, alice, {})
    assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN")
    anonymous = await _get(pair_ssl, page_url, None, {})
    assert (anonymous.status_code, anonymous.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    too_many = await _get(pair_ssl, page_url, root, {"limit": "201"})
    assert (too_many.status_code, too_many.json()["errcode"]) == (400, "M_INVALID_PARAM")
    bad_order = await _get(pair_ssl, page_url, root, {"order_by": "password"})
    assert bad_order.status_code == 400
    delivery = await _get(pair_ssl, f"{base}/_homeport/v1/delivery", alice, {})
    assert (delivery.status_code, delivery.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_the_module_s_own_orders_page_like_synapse(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    """Next attempt and undelivered since: Synapse's rows and totals, in the module's order."""
    await share_a_room(pair, pair_ssl)
    deployment = pair.deployment
    base = deployment.homeservers["internal"].base_url
    admin_id, admin_password = await pair.new_user("internal", admin=True)
    root = (await access_token(deployment, "internal", admin_id, admin_password))[0]
    page_url = f"{base}/_homeport/v1/destinations"
    synapse_url = f"{base}/_synapse/admin/v1/federation/destinations"
    everything = (await _get(pair_ssl, synapse_url, root, {})).json()
    for order in ("next_attempt", "undelivered_since"):
        for params in (
            {"order_by": order},
            {"order_by": order, "dir": "b"},
            {"order_by": order, "limit": "1", "from": "1"},
            {"order_by": order, "destination": "LOCALHOST"},
        ):
            answer = await _get(pair_ssl, page_url, root, params)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["total"] == everything["total"]
            for row in body["destinations"]:
                assert row in everything["destinations"], (params, row)
    delivery = await _get(pair_ssl, f"{base}/_homeport/v1/delivery", root, {})
    assert delivery.status_code == 200
    assert delivery.json()["total"] == len(delivery.json()["undelivered"])


async def test_background_updates_lists_what_synapse_has_left_and_verify_waits_for_it(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    """Synapse's own table, read by the module; verify refuses to probe until it is empty."""
    deployment = pair.deployment
    hs = deployment.homeservers["internal"]
    url = f"{hs.base_url}/_homeport/v1/background_updates"
    admin_id, admin_password = await pair.new_user("internal", admin=True)
    user_id, user_password = await pair.new_user("internal")
    root = (await access_token(deployment, "internal", admin_id, admin_password))[0]
    alice = (await access_token(deployment, "internal", user_id, user_password))[0]
    refused = await _get(pair_ssl, url, alice, {})
    assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN")
    anonymous = await _get(pair_ssl, url, None, {})
    assert (anonymous.status_code, anonymous.json()["errcode"]) == (401, "M_MISSING_TOKEN")

    synapse = f"{hs.base_url}/_synapse/admin/v1/background_updates"
    headers = {"Authorization": f"Bearer {root}"}
    async with (
        httpx.AsyncClient(verify=pair_ssl, timeout=30, headers=headers) as http,
        service_client(deployment, "internal", pair_ssl) as admin,
    ):
        # Paused, a job that Synapse's admin API starts stays in the table.
        paused = await http.post(f"{synapse}/enabled", json={"enabled": False})
        assert paused.status_code == 200, paused.text
        try:
            started = await http.post(
                f"{synapse}/start_job", json={"job_name": "populate_stats_process_rooms"}
            )
            assert started.status_code == 200, started.text
            answer = await _get(pair_ssl, url, root, {})
            assert answer.status_code == 200
            assert "populate_stats_process_rooms" in answer.json()["pending"]
            probe = ServerProbe("internal", hs.server_name, "t", admin)
            steps: list[str] = []
            with pytest.raises(HomeportError, match=r"internal \(\d+ left\)"):
                await wait_for_background_updates([probe], steps.append, timeout=1.5)
            assert steps, "verify says what it waits for"
            assert "internal" in steps[0], steps
        finally:
            resumed = await http.post(f"{synapse}/enabled", json={"enabled": True})
            assert resumed.status_code == 200, resumed.text
        # Resumed, Synapse runs it and verify goes on.
        await wait_for_background_updates([probe], steps.append, timeout=120)
        assert await admin.pending_background_updates() == []
