#!/usr/bin/env python3
"""Group sync: initial sync against Synapse alone, a no-change reconcile, change latency.

Fills a real slapd with USERS people in GROUPS groups (each person in one
group), maps each group to a space on internal (the starter deployment as
`homeport init` writes it: its rate limits; group sync's service account is
exempt from them, as Homeport sets it up), and reports, in the same run:

  initial sync      the first sync of every space, in ROUNDS rounds of
                    GROUPS/ROUNDS groups each (`reconcile(only=...)`, what
                    group sync runs for spaces added to the file): each round
                    reads the directory and Synapse, creates the spaces,
                    provisions the people and joins them. People per second,
                    and joins per second of the join phase
  baseline          the same work by Synapse alone, as a script would do it
                    with Synapse's own APIs: as many spaces created the same
                    way (createRoom, as the same service account), as many
                    people provisioned (admin API, display name and an
                    external ID, as group sync sends them) and joined (admin
                    join API), phase after phase, at group sync's concurrency
                    (8), joins spread over the spaces as group sync spreads
                    them. Its own people (b00000...) and spaces (#b000...)
  ratio             group sync / baseline, people per second (target >= 0.9)
                    and joins per second; and the CPU each side's rounds used
                    (this process: group sync, or the baseline's script; both
                    homeservers' Synapse)
  directory read    reading every person and group, paged: what each change
                    costs before planning
  no-change reconcile  a full reconcile of every person and space when
                    nothing changed: seconds (target < 2 s), and the actions it
                    applied (target 0: no write to Synapse)
  change -> membership  with the `groupsync` service running (syncrepl), from
                    an `ldapmodify`-style change until the person is joined:
                    p50, p95 (target p95 < 5 s)

The two sides take turns, round by round (A B, B A, ...: bench/interleaved.py
says why), on the same homeserver, so each round of either side meets a
database grown by both. Group sync's reads of Synapse (the mapped spaces,
every account when a round wants more than 50 people) are its own cost, and
include the baseline's accounts: a real homeserver has other users too.

    .venv/bin/python bench/groupsync.py --users 5000 --groups 100 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import ldap
import ldap.modlist
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.interleaved import percentile, spread, turns  # noqa: E402
from homeport.config.deployment import Deployment  # noqa: E402
from homeport.config.loader import load_deployment  # noqa: E402
from homeport.directory.ldap_reader import read_directory  # noqa: E402
from homeport.groupsync.plan import Action  # noqa: E402
from homeport.groupsync.run import reconcile  # noqa: E402
from homeport.layout import DeploymentLayout  # noqa: E402
from homeport.store.database import open_store  # noqa: E402
from homeport.supervision.state import set_held  # noqa: E402
from homeport.synapse.service_account import service_client  # noqa: E402
from homeport.synapse.spaces_api import create_room_body  # noqa: E402
from tests.harness import (  # noqa: E402
    RunningDeployment,
    edit_yaml,
    homeport,
    init_deployment,
    synapse_pids,
)
from tests.ldap_server import GROUPS, PEOPLE, Slapd  # noqa: E402
from tests.ports import free_port_run  # noqa: E402

CONCURRENCY = 8  # group sync's CONCURRENT_WRITES
CHANGES = 20
GROUP_SYNC, BASELINE = "group sync", "baseline"
BASELINE_PROVIDER = "bench-baseline"  # the baseline's external IDs, apart from the directory's


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


def batches(groups: int, rounds: int) -> list[range]:
    """The groups split into `rounds` consecutive batches of (nearly) equal size."""
    edges = [groups * r // rounds for r in range(rounds + 1)]
    return [range(edges[r], edges[r + 1]) for r in range(rounds)]


class CpuMeter:
    """CPU time of this process and of both homeservers' Synapse since it was made."""

    def __init__(self, deployment: Deployment) -> None:
        self._me = psutil.Process()
        self._synapse = [psutil.Process(pid) for pid in synapse_pids(deployment.data_dir)]
        self._started = time.monotonic()
        self._before = self._times()

    def _times(self) -> tuple[float, float]:
        mine = sum(self._me.cpu_times()[:2])
        theirs = sum(sum(p.cpu_times()[:2]) for p in self._synapse)
        return mine, theirs

    def shares(self) -> tuple[float, float]:
        """(this process, Synapse), each in cores used on average."""
        elapsed = time.monotonic() - self._started
        after = self._times()
        return (after[0] - self._before[0]) / elapsed, (after[1] - self._before[1]) / elapsed


@dataclass(frozen=True)
class Round:
    side: str
    people: int
    joins: int
    seconds: float  # the whole round
    join_s: float  # from the end of the phase before the joins to the last join
    cpu: tuple[float, float]  # cores: this process, Synapse

    @property
    def people_rate(self) -> float:
        return self.people / self.seconds

    @property
    def join_rate(self) -> float:
        return self.joins / self.join_s


def people_rate(result: Round) -> float:
    return result.people_rate


def join_rate(result: Round) -> float:
    return result.join_rate


def join_phase(done: list[tuple[str, float]], started: float) -> float:
    """Seconds from the last action before the joins (or the start) to the last join."""
    before = [t for kind, t in done if kind != "join"]
    joins = [t for kind, t in done if kind == "join"]
    return max(joins) - max(before, default=started)


async def group_sync_round(running: RunningDeployment, groups: range) -> Round:
    deployment = running.deployment
    engine = open_store(deployment)
    done: list[tuple[str, float]] = []

    def note(action: Action, ok: bool) -> None:
        if ok:
            done.append((action.kind, time.monotonic()))

    meter = CpuMeter(deployment)
    try:
        started = time.monotonic()
        only = [f"g{g:03d}" for g in groups]
        report = await reconcile(deployment, engine, only=only, on_done=note)
        elapsed = time.monotonic() - started
    finally:
        engine.dispose()
    assert report.outcome == "ok", (report.outcome, report.failed[:3])
    people = sum(1 for kind, _ in done if kind == "provision_user")
    joins = sum(1 for kind, _ in done if kind == "join")
    return Round(GROUP_SYNC, people, joins, elapsed, join_phase(done, started), meter.shares())


async def baseline_round(
    running: RunningDeployment, groups: range, users: int, group_count: int
) -> Round:
    """What group sync does for `groups`, by hand: spaces, then people, then joins."""
    deployment = running.deployment
    server = deployment.homeservers["internal"].server_name
    members = {g: [f"@b{i:05d}:{server}" for i in range(g, users, group_count)] for g in groups}
    done: list[tuple[str, float]] = []
    async with service_client(deployment, "internal") as admin:
        client = admin.client
        limit = asyncio.Semaphore(CONCURRENCY)

        async def call(kind: str, method: str, path: str, body: dict[str, Any]) -> Any:
            async with limit:
                answer = await client.request(method, path, json=body)
            done.append((kind, time.monotonic()))
            return answer

        def space(g: int) -> Awaitable[Any]:
            body = create_room_body(f"b{g:03d}", f"Baseline {g}", space=True)  # group sync's
            return call("create_space", "POST", "/_matrix/client/v3/createRoom", body)

        def provision(user: str) -> Awaitable[Any]:
            localpart = user[1:].split(":", 1)[0]
            body = {
                "admin": False,
                "external_ids": [{"auth_provider": BASELINE_PROVIDER, "external_id": localpart}],
                "displayname": f"Person {int(localpart[1:])}",
            }
            return call("provision_user", "PUT", f"/_synapse/admin/v2/users/{quote(user)}", body)

        def join(room: str, user: str) -> Awaitable[Any]:
            path = f"/_synapse/admin/v1/join/{quote(room)}"
            return call("join", "POST", path, {"user_id": user})

        meter = CpuMeter(deployment)
        started = time.monotonic()
        created = await asyncio.gather(*(space(g) for g in groups))
        rooms = {g: str(answer["room_id"]) for g, answer in zip(groups, created, strict=True)}
        await asyncio.gather(
            *(provision(u) for u in sorted(u for m in members.values() for u in m))
        )
        # One space's turn after another's, as group sync spreads them.
        deepest = max(len(m) for m in members.values())
        await asyncio.gather(
            *(
                join(rooms[g], members[g][rank])
                for rank in range(deepest)
                for g in groups
                if rank < len(members[g])
            )
        )
        elapsed = time.monotonic() - started
    people = sum(len(m) for m in members.values())
    return Round(BASELINE, people, people, elapsed, join_phase(done, started), meter.shares())


def round_line(number: int, result: Round) -> str:
    return (
        f"  round {number} {result.side:<10}  {result.people} people in {result.seconds:6.1f} s: "
        f"{result.people_rate:5.1f} people/s; joins {result.join_rate:5.1f}/s; CPU: "
        f"{'group sync' if result.side == GROUP_SYNC else 'script'} {result.cpu[0]:.0%} of a "
        f"core, Synapse {result.cpu[1]:.0%}"
    )


async def initial_sync(
    running: RunningDeployment, users: int, groups: int, pairs: int
) -> list[tuple[int, Round]]:
    """Group sync's rounds and the baseline's, taking turns."""
    parts = batches(groups, pairs)
    rounds: list[tuple[int, Round]] = []
    for number, side in turns(pairs, GROUP_SYNC, BASELINE):
        part = parts[number - 1]
        if side == GROUP_SYNC:
            result = await group_sync_round(running, part)
        else:
            result = await baseline_round(running, part, users, groups)
        rounds.append((number, result))
        print(round_line(number, result), flush=True)
    return rounds


def print_initial_sync(rounds: list[tuple[int, Round]]) -> None:
    sides: dict[str, list[Round]] = {GROUP_SYNC: [], BASELINE: []}
    pairs: dict[int, dict[str, Round]] = {}
    for number, result in rounds:
        sides[result.side].append(result)
        pairs.setdefault(number, {})[result.side] = result

    def rates(side: str, rate: Callable[[Round], float]) -> list[float]:
        return [rate(r) for r in sides[side]]

    for side, label in ((GROUP_SYNC, "group sync"), (BASELINE, "baseline (Synapse alone)")):
        people = sum(r.people for r in sides[side])
        seconds = sum(r.seconds for r in sides[side])
        cpu = [sum(r.cpu[i] * r.seconds for r in sides[side]) / seconds for i in (0, 1)]
        print(
            f"{label}: {people} people in {seconds:.1f} s; people/s "
            f"{spread(rates(side, people_rate))}, joins/s "
            f"{spread(rates(side, join_rate))}; CPU "
            f"{'group sync' if side == GROUP_SYNC else 'script'} {cpu[0]:.0%} of a core, "
            f"Synapse {cpu[1]:.0%}"
        )
    measures: list[tuple[str, Callable[[Round], float], str]] = [
        ("people/s", people_rate, " (target >= 0.9)"),
        ("joins/s", join_rate, ""),
    ]
    for what, rate, target in measures:
        ratio = statistics.median(rates(GROUP_SYNC, rate)) / statistics.median(
            rates(BASELINE, rate)
        )
        each = [rate(p[GROUP_SYNC]) / rate(p[BASELINE]) for p in pairs.values()]
        print(
            f"  group sync / baseline, {what}, pair by pair: {spread(each, 2)}; "
            f"of the two medians: {ratio:.2f}{target}"
        )


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
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each side")
    args = parser.parse_args()
    if not 0 < args.rounds <= args.groups:
        parser.error("--rounds: at least 1, and at most one per group")
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
            started = time.monotonic()
            rounds = asyncio.run(initial_sync(running, args.users, args.groups, args.rounds))
            print(
                f"initial sync and baseline, {args.rounds} rounds each, interleaved: "
                f"{time.monotonic() - started:.0f} s"
            )
            print_initial_sync(rounds)
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
