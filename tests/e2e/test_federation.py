"""End to end: init, up, users on both servers, a room on external joined from internal."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import ssl
import stat
from pathlib import Path
from urllib.parse import quote

import pytest

from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.synapse.service_account import service_client
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
        async with service_client(deployment, viewer, pair_ssl) as admin:
            row = await admin.destination(target.server_name)
        assert row is not None, f"{viewer} lists no destination {target.server_name}"
        assert row.retry_interval == 0
        assert row.last_successful_stream_ordering is not None

    status = json.loads(homeport("status", "-c", config, "--json").stdout)
    for name in ("internal", "external"):
        entry = status["homeservers"][name]
        assert entry["running"]
        assert entry["ready"]
        assert entry["federation"]["destinations"] >= 1
        assert entry["federation"]["failing"] == 0


async def test_a_lost_service_account_file_retires_the_old_account(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    """Homeport registers a new admin account, and the old one, whose password is gone, ends."""
    deployment = pair.deployment
    files = pair.layout.homeserver("external")
    old = json.loads(files.service_account.read_text())
    files.service_account.unlink()
    async with service_client(deployment, "external", pair_ssl) as admin:
        answer = await admin.client.request(
            "GET", f"/_synapse/admin/v2/users/{quote(old['user_id'])}"
        )
    new = json.loads(files.service_account.read_text())
    assert new["user_id"] != old["user_id"]
    assert answer["deactivated"] is True
    assert stat.S_IMODE(files.service_account.stat().st_mode) == 0o600


async def test_services_that_lose_the_file_together_replace_the_account_once(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    """As services that `up` starts together find no credentials: one makes the account
    (here, a replacement of the lost one), and the others take what it stored, never
    retiring the account it has just made for one of their own."""
    deployment = pair.deployment
    files = pair.layout.homeserver("external")
    files.service_account.unlink()

    async def whoami() -> str:
        async with service_client(deployment, "external", pair_ssl) as admin:
            return await admin.client.whoami()

    users = await asyncio.gather(*(whoami() for _ in range(3)))
    new = json.loads(files.service_account.read_text())
    assert users == [new["user_id"]] * 3
    async with service_client(deployment, "external", pair_ssl) as admin:
        answer = await admin.client.request(
            "GET", f"/_synapse/admin/v2/users/{quote(new['user_id'])}"
        )
    assert answer["deactivated"] is False


async def test_two_services_with_rendered_credentials_share_one_account(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    """As pods of a cluster start: each has the same rendered password and no token yet.

    Both register at once; the one Synapse answers M_USER_IN_USE logs in
    with the shared password instead of retiring the account.
    """
    deployment = pair.deployment
    user_id = f"@homeport-{secrets.token_hex(3)}:{deployment.homeservers['external'].server_name}"
    seeded = json.dumps({"user_id": user_id, "password": secrets.token_urlsafe(24)})
    copies = []
    for pod in ("one", "two"):
        keys = DeploymentLayout(tmp_path / pod).homeserver("external").keys_dir
        keys.mkdir(parents=True)
        shutil.copy(pair.layout.homeserver("external").registration_shared_secret, keys)
        (keys / "service_account.json").write_text(seeded)
        copies.append(deployment.model_copy(update={"data_dir": tmp_path / pod}))

    async def whoami(copy: Deployment) -> str:
        async with service_client(copy, "external", pair_ssl) as admin:
            return await admin.client.whoami()

    assert await asyncio.gather(*(whoami(copy) for copy in copies)) == [user_id, user_id]
    async with service_client(deployment, "external", pair_ssl) as admin:
        answer = await admin.client.request("GET", f"/_synapse/admin/v2/users/{quote(user_id)}")
    assert answer["deactivated"] is False
    assert answer["admin"] is True
