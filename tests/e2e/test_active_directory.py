"""Active Directory end to end: a real Samba domain controller, real Synapse, shipped settings.

People log in with the directory password by every name AD gives them (the
account name, the user principal name, the down-level DOMAIN\\name), over
StartTLS verified against the test's CA; a disabled account is refused; group
sync reads nested groups and skips disabled accounts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from homeport.layout import DeploymentLayout
from homeport.runtime.state import set_held
from homeport.synapse.service_account import service_client
from homeport.trust import client_ssl_context
from tests.harness import (
    RunningDeployment,
    edit_yaml,
    free_port_run,
    homeport,
    init_deployment,
    run_sync,
    running_deployment,
)
from tests.samba_server import GROUPS, PEOPLE, SambaDC

pytestmark = pytest.mark.e2e

DEE_PASSWORD = "Dee-Directory-1"
ED_PASSWORD = "Ed-Directory-1"


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    with SambaDC(tmp_path_factory.mktemp("samba")) as server:
        dee = server.add_user("dee", display_name="Dee Dee", password=DEE_PASSWORD)
        ed = server.add_user("ed", display_name="Ed Edison", password=ED_PASSWORD, disabled=True)
        engineering = server.add_group("engineering", [dee])
        server.add_group("staff", [engineering, ed])
        yield server


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, dc: SambaDC) -> Iterator[RunningDeployment]:
    directory = tmp_path_factory.mktemp("ad")
    config = init_deployment(directory, relax=False)  # Homeport's shipped settings
    secret = dc.password_file(directory / "ad.secret")

    def add_group_sync(data: Any) -> None:
        data["group_sync"] = {
            "homeserver": "internal",
            "port": free_port_run(1),
            "interval": "1h",
            "ldap": {
                "uri": dc.start_tls_uri,
                "start_tls": True,
                "ca_file": str(dc.ca_file),
                "bind_dn": dc.bind_dn,
                "bind_password_file": str(secret),
                "user_base": PEOPLE,
                "group_base": GROUPS,
                "active_directory": True,
            },
            "spaces": [{"name": "Staff", "alias": "staff", "ldap_cn": "staff"}],
        }

    edit_yaml(config, add_group_sync)
    layout = DeploymentLayout(directory / "data")
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    set_held(layout, "groupsync", True)
    with running_deployment(config) as deployment:
        yield deployment


def uid(running: RunningDeployment, localpart: str) -> str:
    return f"@{localpart}:{running.deployment.homeservers['internal'].server_name}"


def login(running: RunningDeployment, user: str, password: str) -> httpx.Response:
    hs = running.deployment.homeservers["internal"]

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=hs.base_url, verify=client_ssl_context(running.deployment), timeout=120
        ) as http:
            return await http.post(
                "/_matrix/client/v3/login",
                json={
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user},
                    "password": password,
                },
            )

    return run_sync(go())


@pytest.mark.parametrize("name", ["dee", "dee@homeport.test", "HOMEPORT\\dee", "DEE"])
def test_an_ad_member_logs_in_by_every_name_ad_gives_them(
    running: RunningDeployment, name: str
) -> None:
    answer = login(running, name, DEE_PASSWORD)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == uid(running, "dee")


def test_a_wrong_password_and_a_disabled_account_are_refused(running: RunningDeployment) -> None:
    for name, password in [("dee", "not-dees"), ("ed", ED_PASSWORD)]:
        answer = login(running, name, password)
        assert (answer.status_code, answer.json()["errcode"]) == (403, "M_FORBIDDEN"), name


def test_group_sync_reads_nested_groups_and_skips_disabled_accounts(
    running: RunningDeployment,
) -> None:
    result = homeport("groupsync", "run", "--json", "-c", str(running.config_path), timeout=300)
    report = json.loads(result.stdout)
    assert report["outcome"] == "ok", report
    assert report["conflicts"] == []  # dee's account is the one her first login created

    async def members() -> list[str]:
        async with service_client(running.deployment, "internal") as admin:
            server = running.deployment.homeservers["internal"].server_name
            found = await admin.client.request(
                "GET", "/_matrix/client/v3/directory/room/" + quote(f"#staff:{server}")
            )
            body = await admin.client.request(
                "GET", f"/_synapse/admin/v1/rooms/{quote(found['room_id'])}/members"
            )
            return list(body["members"])

    joined = run_sync(members())
    assert uid(running, "dee") in joined  # through engineering, inside staff
    assert uid(running, "ed") not in joined  # disabled
