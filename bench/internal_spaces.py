#!/usr/bin/env python3
"""Internal spaces: what the Homeport module's checks add to room creation in a space.

On the one-homeserver starter (`homeport init --model single`, Homeport's own settings)
plus a second homeserver `plain`, the same (its own audit bot included) but without
internal spaces. On each, a user makes a space, then, round after round, a room in it
the way Element does (`createRoom` with an `m.space.parent` in `initial_state`,
"visible to space members", Element's default) and adds it as the space's child
(`PUT .../m.space.child/...`). On `main` the space is the internal #staff: the module
reads what the internal spaces hold, makes the room non-federated, and checks the
child; on `plain` it does nothing. Sides take turns (bench/interleaved.py), so both
share the machine's moments.

Baseline: the same requests on `plain`, in the same run. Target: at most 1.1x, for
creation and for the child event (medians). Room creation is rate-limited per user by
Synapse (10 at once): the bench users' limits are lifted on both sides alike.

    .venv/bin/python bench/internal_spaces.py --rounds 60
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.interleaved import percentile, turns  # noqa: E402
from homeport.synapse.service_account import service_client  # noqa: E402
from homeport.trust import client_ssl_context  # noqa: E402
from tests.harness import (  # noqa: E402
    RunningDeployment,
    access_token,
    edit_yaml,
    init_deployment,
    run_sync,
)


def _add_plain(config: Path) -> None:
    def edit(data: Any) -> None:
        main = data["homeservers"]["main"]
        port = int(main["port"]) + 3
        host = str(main["server_name"]).rsplit(":", 1)[0]
        policy = {k: v for k, v in main["policy"].items() if k != "rooms"}
        data["homeservers"]["plain"] = {
            "server_name": f"{host}:{port}",
            "address": "127.0.0.1",
            "port": port,
            "database": "sqlite",
            "policy": {**policy, "rooms": {"federation": "creator_choice"}},
            # An audit bot as main has: the two differ in their internal spaces only.
            "audit": {**main["audit"], "port": port + 1},
        }

    edit_yaml(config, edit)


class Side:
    """One homeserver's user, space and requests."""

    def __init__(self, http: httpx.Client, base_url: str, token: str, server: str) -> None:
        self.http, self.base, self.server = http, base_url, server
        self.headers = {"Authorization": f"Bearer {token}"}
        self.create: list[float] = []
        self.child: list[float] = []
        self.space = self._post(
            "/createRoom",
            {
                "preset": "public_chat",
                "room_alias_name": "staff",
                "name": "Staff",
                "creation_content": {"type": "m.space"},
            },
        )["room_id"]

    def _post(self, path: str, body: Any) -> Any:
        answer = self.http.post(
            f"{self.base}/_matrix/client/v3{path}", json=body, headers=self.headers
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def round(self) -> None:
        body = {
            "preset": "private_chat",
            "name": "Plans",
            "initial_state": [
                {
                    "type": "m.space.parent",
                    "state_key": self.space,
                    "content": {"via": [self.server], "canonical": True},
                },
                # Element's default for a room in a space: "Visible to space members".
                {
                    "type": "m.room.join_rules",
                    "state_key": "",
                    "content": {
                        "join_rule": "restricted",
                        "allow": [{"type": "m.room_membership", "room_id": self.space}],
                    },
                },
            ],
        }
        started = time.perf_counter()
        room = self._post("/createRoom", body)["room_id"]
        self.create.append(time.perf_counter() - started)
        path = f"/rooms/{quote(self.space)}/state/m.space.child/{quote(room)}"
        started = time.perf_counter()
        answer = self.http.put(
            f"{self.base}/_matrix/client/v3{path}",
            json={"via": [self.server]},
            headers=self.headers,
        )
        self.child.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text


def _ms(values: list[float]) -> str:
    p50, p95 = statistics.median(values) * 1000, percentile(values, 0.95) * 1000
    return f"p50 {p50:6.1f} ms, p95 {p95:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=60, help="rooms made on each side")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="homeport-bench-spaces-"))
    config = init_deployment(work / "deployment", model="single")
    _add_plain(config)
    running = RunningDeployment(config)
    running.start()
    try:
        deployment = running.deployment
        context = client_ssl_context(deployment)
        with httpx.Client(verify=context, timeout=60) as http:
            sides = {}
            for name in ("main", "plain"):
                user, password = run_sync(running.new_user(name))

                async def unlimited(name: str = name, user: str = user) -> None:
                    async with service_client(deployment, name, context) as admin:
                        await admin.override_ratelimit(user)

                run_sync(unlimited())
                token = run_sync(access_token(deployment, name, user, password))[0]
                hs = deployment.homeservers[name]
                sides[name] = Side(http, hs.base_url, token, hs.server_name)
            for _ in range(3):  # warm-up, not measured: connections, caches
                for side in sides.values():
                    side.round()
            for side in sides.values():
                side.create.clear()
                side.child.clear()
            for _pair, name in turns(args.rounds, "main", "plain"):
                sides[name].round()
        main_side, plain = sides["main"], sides["plain"]
        print(f"{args.rounds} rooms made in a space on each side, taking turns")
        print(f"createRoom in the space   internal spaces (main): {_ms(main_side.create)}")
        print(f"                          baseline (plain):       {_ms(plain.create)}")
        print(f"m.space.child             internal spaces (main): {_ms(main_side.child)}")
        print(f"                          baseline (plain):       {_ms(plain.child)}")
        for what, ours, base in (
            ("createRoom", main_side.create, plain.create),
            ("m.space.child", main_side.child, plain.child),
        ):
            ratio = statistics.median(ours) / statistics.median(base)
            verdict = "met" if ratio <= 1.1 else "MISSED"
            print(f"ratio {what} (medians): {ratio:.2f}x (target <= 1.1x): {verdict}")
    finally:
        running.stop()
        running.kill_leftovers()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from bench.run_info import announced

    with announced():
        main()
