#!/usr/bin/env python3
"""Time of a full `homeport verify` for two homeservers, and random policies.

Starts the starter deployment (Synapse's production rate limits as Homeport
renders them), then measures, in the same run:

  verify    `homeport verify --json` as a user runs it (process start included),
            on the starter policy; target: under 10 s;
  baseline  what Synapse itself takes for the heart of one pair's probe: two
            users created through the admin API, a room created on one server
            and joined from the other (plain client requests, no Homeport);
  random    --policies random policy combinations, each applied with
            `homeport restart` on both homeservers, then verified; every
            mismatch is printed with its seed.

    .venv/bin/python bench/verify.py --rounds 3 --policies 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.synapse.api import SynapseClient  # noqa: E402
from homeport.synapse.service_account import service_client  # noqa: E402
from homeport.trust import client_ssl_context  # noqa: E402
from tests.harness import (  # noqa: E402
    HOMEPORT,
    RunningDeployment,
    edit_yaml,
    homeport,
    init_deployment,
)
from tests.policies import random_policies  # noqa: E402


def timed_verify(config: Path) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    result = subprocess.run(
        [*HOMEPORT, "verify", "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"verify failed:\n{result.stderr}")
    report: dict[str, Any] = json.loads(result.stdout)
    return elapsed, report


async def baseline_round(running: RunningDeployment) -> float:
    """Admin-created users, a room on external, a remote join from internal."""
    deployment = running.deployment
    context = client_ssl_context(deployment)
    internal = deployment.homeservers["internal"]
    external = deployment.homeservers["external"]
    async with (
        service_client(deployment, "internal", context) as int_admin,
        service_client(deployment, "external", context) as ext_admin,
    ):
        started = time.monotonic()
        tag = secrets.token_hex(4)
        owner = f"@bench-{tag}-o:{external.server_name}"
        joiner = f"@bench-{tag}-j:{internal.server_name}"
        await asyncio.gather(
            ext_admin.put_user(owner, secrets.token_urlsafe(16), "owner"),
            int_admin.put_user(joiner, secrets.token_urlsafe(16), "joiner"),
        )
        owner_token, joiner_token = await asyncio.gather(
            ext_admin.login_as(owner), int_admin.login_as(joiner)
        )
        async with (
            SynapseClient(external.base_url, context, owner_token) as o,
            SynapseClient(internal.base_url, context, joiner_token) as j,
        ):
            room = await o.request(
                "POST", "/_matrix/client/v3/createRoom", json={"preset": "public_chat"}
            )
            await j.request(
                "POST",
                f"/_matrix/client/v3/join/{quote(room['room_id'])}",
                params={"server_name": external.server_name},
                json={},
            )
        return time.monotonic() - started


def set_policies(config: Path, policies: dict[str, dict[str, Any]]) -> None:
    def edit(data: Any) -> None:
        for name, policy in policies.items():
            data["homeservers"][name]["policy"] = policy

    edit_yaml(config, edit)
    for name in policies:
        homeport("restart", "-c", str(config), name, timeout=240)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--policies", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="homeport-bench-") as tmp:
        # Homeport's production rate limits, as a real deployment has them.
        config = init_deployment(Path(tmp))
        running = RunningDeployment(config)
        running.start()
        try:
            verify_times, baseline_times = [], []
            for index in range(args.rounds):
                elapsed, report = timed_verify(config)
                verify_times.append(elapsed)
                baseline_times.append(asyncio.run(baseline_round(running)))
                print(
                    f"round {index + 1}: verify {elapsed:.2f} s "
                    f"({len(report['checks'])} checks, {report['mismatches']} mismatches), "
                    f"baseline {baseline_times[-1]:.2f} s",
                    flush=True,
                )
            verify_median = statistics.median(verify_times)
            baseline_median = statistics.median(baseline_times)
            print(f"full verify, 2 homeservers (median of {args.rounds}): {verify_median:.2f} s")
            print(f"baseline, users + room + remote join (same run): {baseline_median:.2f} s")
            print(f"ratio verify / baseline: {verify_median / baseline_median:.1f}x")
            print(f"target: verify under 10 s: {'met' if verify_median < 10 else 'MISSED'}")

            seed = args.seed if args.seed is not None else random.randrange(1_000_000)
            rng = random.Random(seed)
            mismatches = 0
            times = []
            for index in range(args.policies):
                policies = random_policies(rng, config.read_text())
                set_policies(config, policies)
                elapsed, report = timed_verify(config)
                times.append(elapsed)
                bad = [c for c in report["checks"] if not c["ok"]]
                mismatches += len(bad)
                print(
                    f"policy {index + 1}/{args.policies}: {len(bad)} mismatches, {elapsed:.2f} s",
                    flush=True,
                )
                for check in bad:
                    print(f"  MISMATCH {json.dumps(check)}\n  policies {json.dumps(policies)}")
            if args.policies:
                print(
                    f"random policies (seed {seed}): {args.policies} combinations, "
                    f"{mismatches} mismatches, verify median {statistics.median(times):.2f} s"
                )
        finally:
            running.stop()
            running.kill_leftovers()


if __name__ == "__main__":
    from bench.run_info import announced

    with announced():
        main()
