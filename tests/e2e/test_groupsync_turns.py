"""Group sync runs take turns: `homeport groupsync run` while the service of `up` runs.

A deployment of its own on Homeport's shipped settings, with one crowd of new
people to provision, so that the service's first run is still going when the
command starts; the group sync service starts held, so the test says when.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from homeport.groupsync.apply import Executor
from homeport.groupsync.history import GroupSyncHistory
from homeport.groupsync.plan import Action
from homeport.groupsync.turns import EXIT_IN_PROGRESS
from homeport.store.database import open_store
from homeport.store.leases import Lease
from homeport.synapse.service_account import service_client
from homeport.synapse.spaces_api import SpacesApi
from tests.directory_deployment import group_sync_deployment
from tests.harness import (
    RunningDeployment,
    homeport,
    run_sync,
    running_deployment,
)
from tests.ldap_server import Slapd

pytestmark = pytest.mark.e2e

PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"
CROWD = [f"c{i:03d}" for i in range(60)]  # a run of 120 joins: several seconds


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    with Slapd(tmp_path_factory.mktemp("slapd")) as ldap:
        for uid in CROWD:
            ldap.add_person(uid, f"Person {uid}")
        ldap.add_group("crowd", [f"uid={uid},{PEOPLE}" for uid in CROWD])
        directory = tmp_path_factory.mktemp("turns")
        settings = {
            "uri": ldap.uri,
            "bind_dn": ldap.bind_dn,
            "bind_password_file": str(ldap.password_file(directory / "ldap.secret")),
            "user_base": PEOPLE,
            "group_base": GROUPS,
        }
        spaces = [{"name": "Crowd", "alias": "crowd", "ldap_cn": "crowd", "rooms": ["lobby"]}]
        # The service starts held: the test starts it when it is ready to race.
        config = group_sync_deployment(directory, settings, spaces)
        with running_deployment(config) as deployment:
            yield deployment


def cli(running: RunningDeployment, *args: str, check: bool = True) -> Any:
    return homeport(*args, "-c", str(running.config_path), check=check, timeout=300)


def test_a_run_by_hand_waits_for_the_services_run(running: RunningDeployment) -> None:
    port = running.deployment.group_sync.port  # type: ignore[union-attr]
    started = cli(running, "start", "groupsync").stdout
    assert f"groupsync is ready at http://127.0.0.1:{port}" in started, started
    engine = open_store(running.deployment)
    history = GroupSyncHistory(engine, "internal")
    try:
        deadline = time.monotonic() + 60
        while (last := history.last_run()) is None or last.outcome != "running":
            assert time.monotonic() < deadline, f"the service never started its run: {last}"
            time.sleep(0.05)
        # Its wait is long: on a busy machine the service's run may outlast the default.
        result = cli(running, "groupsync", "run", "--wait", "300", check=False)
        runs = history.runs()
    finally:
        engine.dispose()
    # Exit 0: nothing failed (a failed action exits 1), nothing guarded.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Waited " in result.stdout, result.stdout
    assert "for the group sync run in progress (the group sync service, pid " in result.stdout
    service_run = next(run for run in runs if run.id == last.id)
    assert (service_run.outcome, service_run.failed) == ("ok", 0), service_run
    assert service_run.applied == service_run.planned > 2 * len(CROWD)
    assert all(run.failed == 0 for run in runs), runs


def test_a_run_elsewhere_is_waited_for_so_long_and_a_crashed_one_not_forever(
    running: RunningDeployment,
) -> None:
    pod = "the group sync service, pid 7 on groupsync-1 [0a1b2c]"  # another machine's
    engine = open_store(running.deployment)
    try:
        elsewhere = Lease(engine, "groupsync", "internal", pod)
        assert elsewhere.acquire() is None
        busy = cli(running, "groupsync", "run", "--json", "--wait", "1", check=False)
        elsewhere.release()
        # It crashed holding the turn: nobody renews it, it expires.
        crashed = Lease(engine, "groupsync", "internal", pod, ttl=8)
        assert crashed.acquire() is None
        taken = cli(running, "groupsync", "run", "--json", check=False)
    finally:
        engine.dispose()
    assert busy.returncode == EXIT_IN_PROGRESS, busy.stdout + busy.stderr
    assert json.loads(busy.stdout)["outcome"] == "in progress"
    assert json.loads(busy.stdout)["waited_for"] == pod
    assert "another group sync run is in progress (the group sync service" in busy.stderr
    assert "--wait" in busy.stderr
    assert taken.returncode == 0, taken.stdout + taken.stderr
    report = json.loads(taken.stdout)
    assert report["waited_for"] == pod
    assert 0 < report["waited_seconds"] < 12
    assert (report["outcome"], report["failed"]) == ("ok", [])


async def _race(running: RunningDeployment, users: list[str]) -> list[list[int]]:
    """Two executors create the same new accounts at once, then join them to the same
    room one after the other; how many actions failed in each, per phase."""
    engine = open_store(running.deployment)
    history = GroupSyncHistory(engine, "internal")
    server_name = running.deployment.homeservers["internal"].server_name
    provision = [Action("provision_user", None, user, "Racer", why="test") for user in users]
    joins = [Action("join", "race", user, why="test") for user in users]
    failed: list[list[int]] = []
    try:
        async with (
            service_client(running.deployment, "internal") as one,
            service_client(running.deployment, "internal") as other,
        ):
            apis = [SpacesApi(admin.client, server_name) for admin in (one, other)]
            room = await apis[0].create(f"race-{secrets.token_hex(3)}", "Race", space=False)
            executors = [
                Executor(api, history, history.start_run("t", 0), {"race": room}) for api in apis
            ]
            totals = await asyncio.gather(*(e.apply(provision) for e in executors))
            failed.append([len(total.failed) for total in totals])
            # The second run planned the joins before the first made them: Synapse's
            # admin join then refuses to invite someone who is in the room already.
            first = await executors[0].apply(joins)
            second = await executors[1].apply(joins)
            failed.append([len(first.failed), len(second.failed)])
    finally:
        engine.dispose()
    return failed


def test_an_account_a_concurrent_run_just_created_counts_as_done(
    running: RunningDeployment,
) -> None:
    """...and so does a join a concurrent run (or the person) just made."""
    server_name = running.deployment.homeservers["internal"].server_name
    tag = secrets.token_hex(3)
    users = [f"@racer{i}-{tag}:{server_name}" for i in range(16)]
    assert run_sync(_race(running, users)) == [[0, 0], [0, 0]]
