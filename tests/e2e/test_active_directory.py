"""Active Directory end to end: a real Samba domain controller, real Synapse, shipped settings.

People log in with the directory password by every name AD gives them (the
account name, the user principal name, the down-level DOMAIN\\name), over
StartTLS verified against the test's CA; a disabled account is refused; group
sync reads nested groups and skips disabled accounts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from homeport.synapse.service_account import service_client
from tests.directory_deployment import group_sync_deployment, password_login, refused
from tests.harness import (
    RunningDeployment,
    homeport,
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
    settings = {
        "uri": dc.start_tls_uri,
        "start_tls": True,
        "ca_file": str(dc.ca_file),
        "bind_dn": dc.bind_dn,
        "bind_password_file": str(dc.password_file(directory / "ad.secret")),
        "user_base": PEOPLE,
        "group_base": GROUPS,
        "active_directory": True,
    }
    spaces = [{"name": "Staff", "alias": "staff", "ldap_cn": "staff"}]
    with running_deployment(group_sync_deployment(directory, settings, spaces)) as deployment:
        yield deployment


def uid(running: RunningDeployment, localpart: str) -> str:
    return f"@{localpart}:{running.deployment.homeservers['internal'].server_name}"


@pytest.mark.parametrize("name", ["dee", "dee@homeport.test", "HOMEPORT\\dee", "DEE"])
def test_an_ad_member_logs_in_by_every_name_ad_gives_them(
    running: RunningDeployment, name: str
) -> None:
    answer = password_login(running, name, DEE_PASSWORD)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == uid(running, "dee")


def test_a_wrong_password_and_a_disabled_account_are_refused(running: RunningDeployment) -> None:
    for name, password in [("dee", "not-dees"), ("ed", ED_PASSWORD)]:
        answer = password_login(running, name, password)
        assert refused(answer), (name, answer.status_code, answer.text)


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
