"""Group sync end to end: a real slapd, real Synapse on Homeport's shipped settings.

The module's deployment starts with the group sync service held, so that the
scenario drives `homeport groupsync run` first; its last steps start the
service and change the directory under it. The steps build on each other's
state, so they are one test.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import expect

from homeport.layout import DeploymentLayout
from homeport.supervision.state import set_held
from homeport.synapse.api import SynapseApiError
from homeport.synapse.service_account import service_client
from homeport.trust import client_ssl_context
from tests.browser import chromium, log_in
from tests.harness import (
    RunningDeployment,
    edit_yaml,
    free_port_run,
    homeport,
    init_deployment,
    run_sync,
    running_deployment,
)
from tests.ldap_server import Slapd

pytestmark = pytest.mark.e2e

PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
EVERYONE = 60  # a group mapped by its DN; with it, a full run lists users (over 50)
SALES = [f"sales{i}" for i in range(1, 6)]


def person(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


@pytest.fixture(scope="module")
def ldap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd")) as server:
        for uid, name in [
            ("alice", "Alice Liddell"),
            ("bob", "Bob Builder"),
            ("carol", "Carol Danvers"),
            ("dave", "Dave Lister"),
            ("erin", "Erin Brockovich"),
            *((uid, uid.title()) for uid in SALES),
            *((f"p{i:03d}", f"Person {i}") for i in range(EVERYONE)),
        ]:
            server.add_person(uid, name, password=f"pw-{uid}")
        server.add_group("contractors", [person("dave")])
        server.add_group("staff", [person("alice"), person("bob"), group("contractors")])
        server.add_group("engineering", [person("carol")], kind="groupOfUniqueNames")
        server.add_group("admins", ["alice"], kind="posixGroup")
        server.add_group("sales", [person(uid) for uid in SALES])
        server.add_group("everyone", [person(f"p{i:03d}") for i in range(EVERYONE)])
        yield server


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, ldap: Slapd) -> Iterator[RunningDeployment]:
    directory = tmp_path_factory.mktemp("groupsync")
    config = init_deployment(directory)  # Homeport's shipped settings
    secret = ldap.password_file(directory / "ldap.secret")
    port = free_port_run(1)

    def add_group_sync(data: Any) -> None:
        data["group_sync"] = {
            "homeserver": "internal",
            "port": port,
            "interval": "1h",  # between full reconciles only the watch can act
            "ldap": {
                "uri": [f"ldap://127.0.0.1:{free_port_run(1)}", ldap.uri],  # failover
                "bind_dn": ldap.bind_dn,
                "bind_password_file": str(secret),
                "user_base": PEOPLE,
                "group_base": GROUPS,
                "page_size": 20,
            },
            "spaces": [
                {
                    "name": "Staff",
                    "alias": "staff",
                    "ldap_cn": "staff",
                    "power_levels": {"admins": 100},
                    "rooms": ["general"],
                    "subspaces": [
                        {"name": "Engineering", "alias": "engineering", "ldap_cn": "engineering"}
                    ],
                },
                {"name": "Sales", "alias": "sales", "ldap_cn": "sales"},
                {"name": "Everyone", "alias": "everyone", "ldap_dn": group("everyone")},
            ],
        }

    edit_yaml(config, add_group_sync)
    layout = DeploymentLayout(directory / "data")
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    set_held(layout, "groupsync", True)  # the `run` tests come first
    with running_deployment(config) as deployment:
        yield deployment


def cli(running: RunningDeployment, *args: str, check: bool = True) -> Any:
    return homeport(*args, "-c", str(running.config_path), check=check, timeout=300)


def server_name(running: RunningDeployment) -> str:
    return running.deployment.homeservers["internal"].server_name


def uid(running: RunningDeployment, localpart: str) -> str:
    return f"@{localpart}:{server_name(running)}"


async def _admin_get(running: RunningDeployment, path: str) -> Any:
    async with service_client(running.deployment, "internal") as admin:
        return await admin.client.request("GET", path)


def room_id(running: RunningDeployment, alias: str) -> str | None:
    full = quote(f"#{alias}:{server_name(running)}")
    try:
        body = run_sync(_admin_get(running, f"/_matrix/client/v3/directory/room/{full}"))
    except SynapseApiError as error:  # only a 404 M_NOT_FOUND means "no such room"
        if (error.status, error.errcode) != (404, "M_NOT_FOUND"):
            raise
        return None
    return str(body["room_id"])


def state(running: RunningDeployment, alias: str) -> list[dict[str, Any]]:
    rid = room_id(running, alias)
    assert rid is not None, f"#{alias} does not exist"
    body = run_sync(_admin_get(running, f"/_synapse/admin/v1/rooms/{quote(rid)}/state"))
    return list(body["state"])


def members(running: RunningDeployment, alias: str) -> dict[str, tuple[str, str]]:
    """user ID -> (membership, sender of the member event)."""
    return {
        e["state_key"]: (e["content"]["membership"], e["sender"])
        for e in state(running, alias)
        if e["type"] == "m.room.member"
    }


def joined(running: RunningDeployment, alias: str) -> set[str]:
    return {u for u, (m, _s) in members(running, alias).items() if m == "join"}


def power(running: RunningDeployment, alias: str) -> dict[str, int]:
    for event in state(running, alias):
        if event["type"] == "m.room.power_levels":
            return dict(event["content"].get("users", {}))
    raise AssertionError("no power levels")


def latest_events(running: RunningDeployment, aliases: list[str]) -> dict[str, str]:
    out = {}
    for alias in aliases:
        rid = room_id(running, alias)
        assert rid is not None
        body = run_sync(
            _admin_get(running, f"/_synapse/admin/v1/rooms/{quote(rid)}/messages?dir=b&limit=1")
        )
        out[alias] = body["chunk"][0]["event_id"]
    return out


ALIASES = ["staff", "general", "engineering", "sales", "everyone"]


def _dry_run_changes_nothing(running: RunningDeployment) -> None:
    out = cli(running, "groupsync", "run", "--dry-run").stdout
    assert "create space" in out
    assert "#staff" in out
    assert "Dry run:" in out
    assert room_id(running, "staff") is None


def _first_run_builds_the_spaces_from_the_groups(running: RunningDeployment) -> None:
    result = cli(running, "groupsync", "run", "--json")
    report = json.loads(result.stdout)
    assert report["outcome"] == "ok", report
    assert report["failed"] == []
    people = {uid(running, p) for p in ("alice", "bob", "dave")}
    engineers = {uid(running, "carol")}
    # Nested group (contractors in staff) counts; the subspace's members count for Staff;
    # the posixGroup admins makes alice an admin there (and in its room).
    assert people | engineers <= joined(running, "staff")
    assert people | engineers <= joined(running, "general")
    assert joined(running, "engineering") >= engineers
    assert uid(running, "bob") not in joined(running, "engineering")
    assert power(running, "staff")[uid(running, "alice")] == 100
    assert power(running, "general")[uid(running, "alice")] == 100
    # The subspace and the room are children of Staff.
    children = {e["state_key"] for e in state(running, "staff") if e["type"] == "m.space.child"}
    assert children == {room_id(running, "general"), room_id(running, "engineering")}
    everyone = {uid(running, f"p{i:03d}") for i in range(EVERYONE)}
    assert everyone <= joined(running, "everyone")
    # Display names come from the directory.
    profile = run_sync(
        _admin_get(running, f"/_synapse/admin/v2/users/{quote(uid(running, 'carol'))}")
    )
    assert profile["displayname"] == "Carol Danvers"


def _a_second_run_writes_nothing_to_synapse(running: RunningDeployment) -> None:
    before = latest_events(running, ALIASES)
    report = json.loads(cli(running, "groupsync", "run", "--json").stdout)
    assert report["actions"] == []
    assert report["applied"] == 0
    assert latest_events(running, ALIASES) == before


def _a_provisioned_user_logs_in_with_the_directory_password(
    running: RunningDeployment,
) -> None:
    base_url = running.deployment.homeservers["internal"].base_url

    async def login(password: str) -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=base_url, verify=client_ssl_context(running.deployment)
        ) as http:
            return await http.post(
                "/_matrix/client/v3/login",
                json={
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": "alice"},
                    "password": password,
                },
            )

    good = run_sync(login("pw-alice"))
    assert good.status_code == 200, good.text
    assert good.json()["user_id"] == uid(running, "alice")
    wrong = run_sync(login("not-her-password"))
    assert (wrong.status_code, wrong.json()["errcode"]) == (403, "M_FORBIDDEN")


def _a_user_removed_from_the_group_is_kicked_by_group_sync(
    running: RunningDeployment, ldap: Slapd
) -> None:
    ldap.remove_member("staff", person("bob"))
    out = cli(running, "groupsync", "run").stdout
    assert "Applied" in out
    bob = uid(running, "bob")
    # From Staff and its room; the membership event says group sync did it.
    for alias in ("staff", "general"):
        membership, sender = members(running, alias)[bob]
        assert membership == "leave"
        assert sender != bob
    status = json.loads(cli(running, "groupsync", "status", "--json").stdout)
    kicks = [a for a in status["recent"] if a["kind"] == "kick" and a["user_id"] == bob]
    assert len(kicks) == 2  # Staff and its room
    assert all(a["result"] == "ok" for a in kicks)


def _the_directory_down_removes_nobody_and_says_why(
    running: RunningDeployment, ldap: Slapd
) -> None:
    before = joined(running, "staff")
    ldap.stop()
    try:
        result = cli(running, "groupsync", "run", check=False)
    finally:
        ldap.start()
    assert result.returncode == 1
    assert "nothing was changed" in result.stderr
    assert "127.0.0.1" in result.stderr  # which servers it tried
    assert joined(running, "staff") == before
    status = json.loads(cli(running, "groupsync", "status", "--json").stdout)
    assert status["runs"][0]["outcome"] == "directory unavailable"


def _a_mass_removal_is_guarded_until_forced(running: RunningDeployment, ldap: Slapd) -> None:
    for uid_ in SALES[1:]:
        ldap.remove_member("sales", person(uid_))
    result = cli(running, "groupsync", "run", check=False)
    assert result.returncode == 1
    assert "removed nobody" in result.stderr
    assert "max_removal_share" in result.stderr
    sales = {uid(running, u) for u in SALES}
    assert sales <= joined(running, "sales")
    forced = cli(running, "groupsync", "run", "--force")
    assert forced.returncode == 0
    assert joined(running, "sales") & sales == {uid(running, "sales1")}


def _watch_applies_a_directory_change_without_waiting_for_the_interval(
    running: RunningDeployment, ldap: Slapd
) -> None:
    cli(running, "start", "groupsync")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the service's first full reconcile done
        status = json.loads(cli(running, "groupsync", "status", "--json").stdout)
        service = status["service"]
        if service and service["last_full_ts"]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the service never reconciled: {status}")
    assert service["directory_ok"] is True
    ldap.add_member("staff", person("erin"))
    erin = uid(running, "erin")
    deadline = time.monotonic() + 60  # the interval is an hour: only the watch can do it
    while erin not in joined(running, "staff"):
        assert time.monotonic() < deadline, "erin never joined #staff"
        time.sleep(0.5)
    status = json.loads(cli(running, "groupsync", "status", "--json").stdout)
    assert any(r["trigger"] == "change" for r in status["runs"])
    assert status["service"]["last_full_ts"] == service["last_full_ts"]  # no full run needed


def _status_and_metrics(running: RunningDeployment) -> None:
    out = cli(running, "groupsync", "status").stdout
    assert "#staff" in out
    assert "cn=staff" in out
    port = running.deployment.group_sync.port  # type: ignore[union-attr]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'homeport_groupsync_runs_total{outcome="ok",trigger="change"}' in metrics
    overall = json.loads(cli(running, "status", "--json").stdout)
    assert overall["services"]["groupsync"]["state"] == "ready"


async def _the_group_sync_page_in_a_browser(running: RunningDeployment) -> None:
    deployment = running.deployment
    assert deployment.admin is not None
    password = secrets.token_urlsafe(12)
    for server in ("internal", "external"):
        cli(running, "user", "create", server, "root", "--admin", "--password", password)
    url = f"https://{deployment.admin.host}:{deployment.admin.port}"
    async with chromium(
        running.layout.admin_tls_certificate, running.layout.ca_certificate
    ) as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await log_in(page, url, "internal", "root", password)
        await page.get_by_role("link", name="Group sync").click()
        await expect(page.get_by_role("heading", name="Group sync")).to_be_visible()
        await expect(page.locator("#mappings")).to_contain_text("#staff:")
        await expect(page.locator("#mappings")).to_contain_text("cn=engineering")
        await expect(page.locator("#service")).to_contain_text("answers")
        # alice logged in with her directory password earlier: directory login works.
        await expect(page.locator("#directory-login")).to_contain_text("works")
        changes = page.locator("#changes")
        await expect(changes).to_contain_text(uid(running, "erin"))
        kicked = changes.locator("tr").filter(has_text=uid(running, "bob")).filter(has_text="kick")
        await expect(kicked.first).to_be_visible()
        power = changes.locator("tr").filter(has_text="set power").first
        await expect(power).to_contain_text("group admins gives 100")
        await expect(page.locator("#errors")).to_have_count(0)  # nothing failed
        if os.environ.get("UPDATE_SCREENSHOTS"):  # as the website's other screenshots
            await page.screenshot(path=DOCS_IMAGES / "groupsync.png", full_page=True)
        # Another homeserver's admins are told where group sync lives.
        other = await browser.new_page()
        await log_in(other, url, "external", "root", password)
        answer = await other.goto(f"{url}/groupsync")
        assert answer is not None
        assert answer.status == 404
        await expect(other.locator("main")).to_contain_text("manages the spaces of internal")


async def test_group_sync_from_a_dry_run_to_watching_the_directory(
    running: RunningDeployment, ldap: Slapd
) -> None:
    """One scenario, in the order an administrator meets it: each step starts from
    the directory and the spaces the previous steps left."""
    _dry_run_changes_nothing(running)
    _first_run_builds_the_spaces_from_the_groups(running)
    _a_second_run_writes_nothing_to_synapse(running)
    _a_provisioned_user_logs_in_with_the_directory_password(running)
    _a_user_removed_from_the_group_is_kicked_by_group_sync(running, ldap)
    _the_directory_down_removes_nobody_and_says_why(running, ldap)
    _a_mass_removal_is_guarded_until_forced(running, ldap)
    _watch_applies_a_directory_change_without_waiting_for_the_interval(running, ldap)
    _status_and_metrics(running)
    await _the_group_sync_page_in_a_browser(running)
