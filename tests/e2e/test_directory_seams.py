"""Where the directory meets Homeport's other promises, on the settings Homeport ships.

A real slapd holds people named like Homeport's own accounts (`homeport`, the
audit bot `audit`) and like a local admin made with `homeport user create`
(`root`). None of them may become those accounts: not by logging in with the
directory password, not through group sync. A directory that is down, or that
accepts connections and never answers, costs a login seconds: local accounts
keep logging in.

The tests run in order on one deployment (group sync's service held, so the
tests drive `homeport groupsync run`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from homeport.identities import DIRECTORY_AUTH_PROVIDER
from homeport.synapse.service_account import service_client
from homeport.synapse_module.contract import DIRECTORY_LOGIN_PATH
from homeport.trust import client_ssl_context
from tests.directory_deployment import group_sync_deployment, password_login, refused
from tests.harness import (
    RunningDeployment,
    homeport,
    run_sync,
    running_deployment,
    status_json,
)
from tests.ldap_server import GROUPS, PEOPLE, SilentServer, Slapd

pytestmark = pytest.mark.e2e

LOCAL_ROOT_PASSWORD = secrets.token_urlsafe(12)


def person(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


@pytest.fixture(scope="module")
def ldap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd")) as server:
        for uid in ("alice", "carol", "homeport", "audit", "root"):
            server.add_person(uid, uid.title(), password=f"dir-{uid}")
        server.add_group("staff", [person(u) for u in ("alice", "carol", "audit", "root")])
        yield server


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, ldap: Slapd) -> Iterator[RunningDeployment]:
    directory = tmp_path_factory.mktemp("seams")
    secret = ldap.password_file(directory / "ldap.secret")
    settings = {
        "uri": ldap.uri,
        "bind_dn": ldap.bind_dn,
        "bind_password_file": str(secret),
        "user_base": PEOPLE,
        "group_base": GROUPS,
    }
    spaces = [{"name": "Staff", "alias": "staff", "ldap_cn": "staff"}]
    with running_deployment(group_sync_deployment(directory, settings, spaces)) as deployment:
        cli(deployment, "user", "create", "internal", "root", "--admin", "--password",
            LOCAL_ROOT_PASSWORD)  # fmt: skip
        yield deployment


def cli(running: RunningDeployment, *args: str, check: bool = True) -> Any:
    return homeport(*args, "-c", str(running.config_path), check=check, timeout=300)


def uid(running: RunningDeployment, localpart: str) -> str:
    return f"@{localpart}:{running.deployment.homeservers['internal'].server_name}"


def login(running: RunningDeployment, user: str, password: str) -> httpx.Response:
    return password_login(running, user, password)


def admin_get(running: RunningDeployment, path: str) -> Any:
    async def go() -> Any:
        async with service_client(running.deployment, "internal") as admin:
            return await admin.client.request("GET", path)

    return run_sync(go())


def user_row(running: RunningDeployment, localpart: str) -> dict[str, Any]:
    return dict(admin_get(running, f"/_synapse/admin/v2/users/{quote(uid(running, localpart))}"))


def test_homeports_own_accounts_never_log_in_with_a_directory_password(
    running: RunningDeployment,
) -> None:
    for name, password in [
        ("homeport", "dir-homeport"),
        ("HOMEPORT", "dir-homeport"),
        (uid(running, "homeport"), "dir-homeport"),
        ("audit", "dir-audit"),
        ("Audit", "dir-audit"),
    ]:
        answer = login(running, name, password)
        assert refused(answer), (name, answer.status_code, answer.text)
    # The service account and the bot are still Homeport's own.
    assert user_row(running, "homeport")["admin"] is True
    bot = user_row(running, "audit")
    assert bot["displayname"] == "Audit bot (recording)"
    assert not any(i["auth_provider"] == DIRECTORY_AUTH_PROVIDER for i in bot["external_ids"])


def test_a_first_login_creates_an_account_bound_to_the_directory(
    running: RunningDeployment,
) -> None:
    answer = login(running, "alice", "dir-alice")
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == uid(running, "alice")
    ids = user_row(running, "alice")["external_ids"]
    assert {"auth_provider": DIRECTORY_AUTH_PROVIDER, "external_id": "alice"} in [
        {k: i[k] for k in ("auth_provider", "external_id")} for i in ids
    ]
    assert refused(login(running, "alice", "wrong"))


def test_a_directory_person_cannot_take_over_a_local_admin(running: RunningDeployment) -> None:
    assert refused(login(running, "root", "dir-root"))
    local = login(running, "root", LOCAL_ROOT_PASSWORD)
    assert local.status_code == 200, local.text
    log = running.layout.homeserver("internal").log_file.read_text()
    assert f"`homeport groupsync link {uid(running, 'root')}`" in log


def test_group_sync_leaves_homeports_accounts_and_other_accounts_alone(
    running: RunningDeployment,
) -> None:
    report = json.loads(cli(running, "groupsync", "run", "--json").stdout)
    assert report["outcome"] == "ok", report
    assert report["conflicts"] == [uid(running, "root")]
    assert any("'audit' is an account Homeport owns" in note for note in report["notes"])
    done = {(a["kind"], a.get("user")) for a in report["actions"]}
    assert ("provision_user", uid(running, "carol")) in done
    assert not any(user in (uid(running, "audit"), uid(running, "root")) for _k, user in done)
    space = admin_get(running, "/_matrix/client/v3/directory/room/" + quote(
        f"#staff:{running.deployment.homeservers['internal'].server_name}"))["room_id"]  # fmt: skip
    members = admin_get(running, f"/_synapse/admin/v1/rooms/{quote(space)}/members")["members"]
    assert uid(running, "alice") in members
    assert uid(running, "carol") in members
    assert uid(running, "audit") not in members
    assert uid(running, "root") not in members
    assert user_row(running, "audit")["displayname"] == "Audit bot (recording)"
    assert user_row(running, "root")["displayname"] != "Root"
    # Carol, provisioned by group sync, logs in with her directory password.
    assert login(running, "carol", "dir-carol").status_code == 200
    status = json.loads(cli(running, "groupsync", "status", "--json").stdout)
    assert "conflict" in status["runs"][0]["detail"]


def test_an_administrator_links_an_account_on_purpose(running: RunningDeployment) -> None:
    refusal = cli(running, "groupsync", "link", "audit", check=False)
    assert refusal.returncode != 0
    assert "an account Homeport owns" in refusal.stderr
    out = cli(running, "groupsync", "link", uid(running, "root")).stdout
    assert "is now linked to uid=root" in out
    answer = login(running, "root", "dir-root")
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == uid(running, "root")
    report = json.loads(cli(running, "groupsync", "run", "--json").stdout)
    assert report["conflicts"] == []
    assert ("join", uid(running, "root")) in {(a["kind"], a.get("user")) for a in report["actions"]}


def test_a_directory_that_never_answers_costs_a_login_seconds(
    running: RunningDeployment, ldap: Slapd
) -> None:
    """slapd stopped, and a server in its place that accepts connections and never answers:
    the local admin still logs in, directory people are refused, status says why."""
    ldap.stop()
    try:
        with SilentServer(ldap.port):
            local = login(running, "root", LOCAL_ROOT_PASSWORD)
            assert local.status_code == 200, local.text
            assert refused(login(running, "carol", "dir-carol"))
            state = admin_get(running, DIRECTORY_LOGIN_PATH)
            assert state["state"] == "unreachable", state
        # The port now refuses connections: the same, at once (logins skip the directory).
        assert login(running, "root", LOCAL_ROOT_PASSWORD).status_code == 200
        internal = status_json(running.config_path)["homeservers"]["internal"]
        assert internal["directory_login"]["state"] == "unreachable"
        assert "no directory server answered" in internal["directory_login"]["error"]
        assert "does not answer" in cli(running, "status").stdout
        metrics = httpx.get(
            f"{running.deployment.admin_url}/metrics",
            verify=client_ssl_context(running.deployment),
        ).text
        assert 'homeport_directory_login_up{homeserver="internal"} 0.0' in metrics
    finally:
        ldap.start()
