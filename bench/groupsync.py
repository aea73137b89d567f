#!/usr/bin/env python3
"""Group sync: initial sync, a no-change reconcile, and directory-to-space latency.

Fills a real slapd with USERS people in GROUPS groups (each person in one
group), maps each group to a space on internal (the starter deployment as
`homeport init` writes it), and reports, in the same run:

  baseline                    the same Synapse calls made by hand: 500 people
                              provisioned (admin API), then joined with the admin
                              join API, at group sync's concurrency (8), into 10
                              rooms that grow to the mapped spaces' size, right
                              after the initial sync: people per second, and
                              joins per second of the join phase
  initial sync                the whole first `groupsync run` (directory read,
                              spaces created, people provisioned and joined) in
                              people per second, with the ratio to the baseline
                              (target >= 0.9); its join phase in joins per second;
                              the CPU group sync and Synapse used meanwhile
  directory read              reading every person and group, paged: what each
                              change costs before planning
  no-change reconcile         a full reconcile of every person and space when
                              nothing changed: seconds (target < 2 s), and the
                              actions it applied (target 0: no write to Synapse)
  change -> membership        with the `groupsync` service running (syncrepl),
                              from an `ldapmodify`-style change until the person
                              is joined: p50, p95 (target p95 < 5 s)

    .venv/bin/python bench/groupsync.py --users 5000 --groups 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import ldap
import ldap.modlist
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.config.loader import load_deployment  # noqa: E402
from homeport.groupsync.ldap_reader import read_directory  # noqa: E402
from homeport.groupsync.plan import Action  # noqa: E402
from homeport.groupsync.run import reconcile  # noqa: E402
from homeport.layout import DeploymentLayout  # noqa: E402
from homeport.runtime.state import set_held  # noqa: E402
from homeport.store.database import open_store  # noqa: E402
from homeport.synapse.service_account import service_client  # noqa: E402
from tests.harness import (  # noqa: E402
    RunningDeployment,
    edit_yaml,
    free_port_run,
    homeport,
    init_deployment,
    synapse_pids,
)
from tests.ldap_server import GROUPS, PEOPLE, Slapd  # noqa: E402

CONCURRENCY = 8
BASELINE_ROOMS = 10
CHANGES = 20


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def fill(server: Slapd, users: int, groups: int) -> None:
    conn = server.connection()
    try:
        for i in range(users):
            uid = f"p{i:05d}"
            entry = {
                "objectClass": [b"inetOrgPerson"],
                "uid": [uid.encode()],
                "cn": [f"Person {i}".encode()],
                "sn": [b"Person"],
            }
            conn.add_s(f"uid={uid},{PEOPLE}", ldap.modlist.addModlist(entry))
        for g in range(groups):
            members = [f"uid=p{i:05d},{PEOPLE}".encode() for i in range(g, users, groups)]
            entry = {"objectClass": [b"groupOfNames"], "cn": [f"g{g:03d}".encode()]}
            entry["member"] = members
            conn.add_s(f"cn=g{g:03d},{GROUPS}", ldap.modlist.addModlist(entry))
    finally:
        conn.unbind_s()


async def baseline(running: RunningDeployment, per_room: int) -> tuple[float, float]:
    """People per second (provisioned, then joined) and joins per second."""
    deployment = running.deployment
    async with service_client(deployment, "internal") as admin:
        client = admin.client
        server = deployment.homeservers["internal"].server_name
        rooms = []
        for r in range(BASELINE_ROOMS):
            body = await client.request(
                "POST",
                "/_matrix/client/v3/createRoom",
                json={"name": f"baseline {r}", "preset": "private_chat"},
            )
            rooms.append(body["room_id"])
        users = [f"@base{i:04d}:{server}" for i in range(BASELINE_ROOMS * per_room)]
        limit = asyncio.Semaphore(CONCURRENCY)

        async def provision(user: str) -> None:
            async with limit:
                await client.request(
                    "PUT", f"/_synapse/admin/v2/users/{quote(user)}", json={"admin": False}
                )

        async def join(room: str, user: str) -> None:
            async with limit:
                await client.request(
                    "POST", f"/_synapse/admin/v1/join/{quote(room)}", json={"user_id": user}
                )

        started = time.monotonic()
        await asyncio.gather(*(provision(u) for u in users))
        joins_started = time.monotonic()
        await asyncio.gather(
            *(join(rooms[i % BASELINE_ROOMS], user) for i, user in enumerate(users))
        )
        ended = time.monotonic()
        return len(users) / (ended - started), len(users) / (ended - joins_started)


async def initial_sync(running: RunningDeployment) -> dict[str, Any]:
    deployment = running.deployment
    engine = open_store(deployment)
    joins: list[float] = []

    def done(action: Action, ok: bool) -> None:
        if action.kind == "join" and ok:
            joins.append(time.monotonic())

    synapse = [psutil.Process(pid) for pid in synapse_pids(deployment.data_dir)]
    me = psutil.Process()
    cpu_before = me.cpu_times(), [p.cpu_times() for p in synapse]
    try:
        started = time.monotonic()
        report = await reconcile(deployment, engine, on_done=done)
        elapsed = time.monotonic() - started
        mine = sum(me.cpu_times()[:2]) - sum(cpu_before[0][:2])
        theirs = sum(
            sum(p.cpu_times()[:2]) - sum(before[:2])
            for p, before in zip(synapse, cpu_before[1], strict=True)
        )
        print(
            f"  CPU during the initial sync: group sync {mine / elapsed:.0%} of a core, "
            f"Synapse (both homeservers) {theirs / elapsed:.0%}"
        )
    finally:
        engine.dispose()
    assert report.outcome == "ok", (report.outcome, report.failed[:3])
    return {
        "seconds": elapsed,
        "actions": len(report.plan.actions),
        "joins": len(joins),
        "join_rate": len(joins) / (joins[-1] - joins[0]),
    }


async def quiet_reconcile(running: RunningDeployment) -> tuple[float, int, int]:
    deployment = running.deployment
    engine = open_store(deployment)
    try:
        started = time.monotonic()
        report = await reconcile(deployment, engine, trigger="full")
        return time.monotonic() - started, len(report.plan.actions), report.applied
    finally:
        engine.dispose()


async def member_of(running: RunningDeployment, alias: str, user: str) -> bool:
    deployment = running.deployment
    server = deployment.homeservers["internal"].server_name
    async with service_client(deployment, "internal") as admin:
        found = await admin.client.request(
            "GET", f"/_matrix/client/v3/directory/room/{quote(f'#{alias}:{server}')}"
        )
        body = await admin.client.request(
            "GET", f"/_synapse/admin/v1/rooms/{quote(found['room_id'])}/members"
        )
    return user in body["members"]


def change_latencies(
    running: RunningDeployment, server: Slapd, users: int, groups: int
) -> list[float]:
    homeport("start", "-c", str(running.config_path), "groupsync")
    deadline = time.monotonic() + 300
    while True:  # the service's own first full reconcile, before we time anything
        status = json.loads(
            homeport("groupsync", "status", "-c", str(running.config_path), "--json").stdout
        )
        if status["service"] and status["service"]["last_full_ts"]:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    name = running.deployment.homeservers["internal"].server_name
    latencies = []
    for n in range(CHANGES):
        uid = f"p{n:05d}"  # in group n % groups; now also in the next one
        target = (n + 1) % groups
        started = time.monotonic()
        server.add_member(f"g{target:03d}", f"uid={uid},{PEOPLE}")
        while not asyncio.run(member_of(running, f"g{target:03d}", f"@{uid}:{name}")):
            assert time.monotonic() - started < 60, f"{uid} never joined g{target:03d}"
            time.sleep(0.05)
        latencies.append(time.monotonic() - started)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="homeport-bench-groupsync-"))
    with Slapd(work / "slapd", size_limit=args.users * 2) as server:
        started = time.monotonic()
        fill(server, args.users, args.groups)
        print(
            f"directory: {args.users} people in {args.groups} groups "
            f"({time.monotonic() - started:.1f} s to fill)"
        )
        config = init_deployment(work / "deployment")
        secret = server.password_file(work / "ldap.secret")

        def add(data: Any) -> None:
            data["group_sync"] = {
                "homeserver": "internal",
                "port": free_port_run(1),
                "interval": "1h",
                "ldap": {
                    "uri": server.uri,
                    "bind_dn": server.bind_dn,
                    "bind_password_file": str(secret),
                    "user_base": PEOPLE,
                    "group_base": GROUPS,
                },
                "spaces": [
                    {"name": f"Group {g}", "alias": f"g{g:03d}", "ldap_cn": f"g{g:03d}"}
                    for g in range(args.groups)
                ],
            }

        edit_yaml(config, add)
        layout = DeploymentLayout(load_deployment(config)[0].data_dir)
        layout.run_dir.mkdir(parents=True, exist_ok=True)
        set_held(layout, "groupsync", True)
        running = RunningDeployment(config)
        running.start()
        try:
            first = asyncio.run(initial_sync(running))
            people_rate = args.users / first["seconds"]
            print(
                f"initial sync: {first['actions']} actions in {first['seconds']:.1f} s: "
                f"{people_rate:.1f} people/s; join phase {first['join_rate']:.1f} joins/s"
            )
            # Measured after the initial sync, on a database of the same size, into rooms
            # that grow to the same number of members as the mapped spaces.
            base_people, base_joins = asyncio.run(baseline(running, args.users // args.groups))
            print(
                f"Synapse's own admin API, same calls by hand (baseline): {base_people:.1f} "
                f"people/s (provision, then join), {base_joins:.1f} joins/s"
            )
            print(
                f"  group sync / baseline: people/s {people_rate / base_people:.2f} "
                f"(target >= 0.9); joins/s {first['join_rate'] / base_joins:.2f}"
            )
            sync = running.deployment.group_sync
            assert sync is not None
            reads = []
            for _ in range(5):
                started = time.monotonic()
                read_directory(sync.ldap)
                reads.append(time.monotonic() - started)
            print(
                f"directory read (what each change costs): {statistics.median(reads):.2f} s "
                "(median of 5)"
            )
            quiet = [asyncio.run(quiet_reconcile(running)) for _ in range(3)]
            seconds = statistics.median(q[0] for q in quiet)
            print(
                f"no-change reconcile of {args.users} people in {args.groups} spaces: "
                f"{seconds:.2f} s (median of 3; target < 2 s), actions planned "
                f"{max(q[1] for q in quiet)}, applied {max(q[2] for q in quiet)} (target 0)"
            )
            latencies = change_latencies(running, server, args.users, args.groups)
            print(
                f"change -> membership with watch ({len(latencies)} changes): "
                f"p50 {percentile(latencies, 0.5):.2f} s, p95 {percentile(latencies, 0.95):.2f} s "
                "(target p95 < 5 s)"
            )
        finally:
            running.stop()
            running.kill_leftovers()


if __name__ == "__main__":
    from bench.run_info import announced

    with announced():
        main()
