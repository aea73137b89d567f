#!/usr/bin/env python3
"""Time of a full `homeport verify` for two homeservers, and random policies.

Starts the starter deployment (on exactly the settings `homeport init` ships),
then measures, in the same run:

  first     the first `homeport verify --json` on the deployment that has just
            started on fresh databases, printed on its own: what a newcomer
            sees on their first try (it waits for whatever Synapse still
            does on a new database, such as its background updates);
  verify    the following runs, as a user runs it (process start included),
            on the starter policy: their median; target: under 10 s;
  baseline  what Synapse itself takes for the heart of one pair's probe: two
            users created through the admin API, a room created on one server
            and joined from the other (plain client requests, no Homeport),
            one right after each verify: the first on its own, then the median
            of the following;
  random    --policies random policy combinations, each applied with
            `homeport restart` on both homeservers, then verified; every
            mismatch is printed with its seed.

    .venv/bin/python bench/verify.py --rounds 4 --policies 10
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
    parser.add_argument(
        "--rounds", type=int, default=4, help="verify runs: the first, then the following"
    )
    parser.add_argument("--policies", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds: at least 2 (the first run, then at least one more)")

    with tempfile.TemporaryDirectory(prefix="homeport-bench-") as tmp:
        config = init_deployment(Path(tmp))  # the shipped settings
        running = RunningDeployment(config)
        started = time.monotonic()
        running.start()
        up_s = time.monotonic() - started
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
            first, first_baseline = verify_times[0], baseline_times[0]
            print(
                f"first verify, on the fresh databases of a deployment that had just started "
                f"({up_s:.1f} s to start; what a newcomer sees): {first:.2f} s; "
                f"baseline right after {first_baseline:.2f} s "
                f"(ratio {first / first_baseline:.1f}x)"
            )
            following = len(verify_times) - 1
            verify_median = statistics.median(verify_times[1:])
            baseline_median = statistics.median(baseline_times[1:])
            print(
                f"full verify, 2 homeservers, the following runs (median of {following}): "
                f"{verify_median:.2f} s"
            )
            print(f"baseline, users + room + remote join (same runs): {baseline_median:.2f} s")
            print(f"ratio verify / baseline: {verify_median / baseline_median:.1f}x")
            for label, value in (("first", first), ("following", verify_median)):
                print(f"target: verify under 10 s, {label}: {'met' if value < 10 else 'MISSED'}")

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
