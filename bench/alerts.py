#!/usr/bin/env python3
"""Time from an outage to the administrators being told, and from the recovery to its word.

Starts the starter deployment exactly as `homeport init` writes it (alerts on,
grace 2 min, settle 1 min, Synapse's real backoff, Homeport's rate limits),
with a webhook receiver this script runs, then for each round: stops external
(`homeport stop external`), times until internal's administrators' room gets
the alert (read as a server admin, the room's own timestamps) and the webhook
its call; starts external again and times the recovery's message the same
way. Baseline, the same run: the promise, `grace` plus one minute for an
alert and `settle` plus one minute for a recovery (the design's worst case is
two checks, 30 s, past each: one to notice, one to find the time is up), and
the ratio of each measurement to it (at most 1.0 is on time). The `not answering`
check needs nothing to be sent, so this is the worst case for Synapse's own
bookkeeping, which would never notice an idle sibling at all.

    .venv/bin/python bench/alerts.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.alerts.room import ALIAS_LOCALPART  # noqa: E402
from homeport.alerts.service import CHECK_S  # noqa: E402
from homeport.config.types import duration_ms  # noqa: E402
from homeport.synapse.api import SynapseApiError, SynapseClient  # noqa: E402
from homeport.trust import client_ssl_context  # noqa: E402
from tests.harness import (  # noqa: E402
    RunningDeployment,
    access_token,
    edit_yaml,
    homeport,
    init_deployment,
)
from tests.webhook import Receiver  # noqa: E402

GUARD_S = 600.0


async def room_notices(running: RunningDeployment, token: str) -> list[tuple[float, str]]:
    """(origin_server_ts in s, body) of each notice in internal's administrators' room."""
    deployment = running.deployment
    hs = deployment.homeservers["internal"]
    async with SynapseClient(hs.base_url, client_ssl_context(deployment), token) as client:
        alias = quote(f"#{ALIAS_LOCALPART}:{hs.server_name}")
        try:
            room = (await client.request("GET", f"/_matrix/client/v3/directory/room/{alias}"))[
                "room_id"
            ]
        except Exception:
            return []
        try:
            body = await client.request(
                "GET",
                f"/_matrix/client/v3/rooms/{quote(room)}/messages",
                params={"dir": "b", "limit": 200},
            )
        except SynapseApiError as error:
            if error.status == 403:  # made a moment ago: its admins are being joined
                return []
            raise
    return [
        (e["origin_server_ts"] / 1000, e["content"]["body"])
        for e in body["chunk"]
        if e["type"] == "m.room.message" and e["content"].get("msgtype") == "m.notice"
    ]


def first_notice(running: RunningDeployment, token: str, after: int, word: str) -> float | None:
    """When the first notice after the first `after` with `word` in it was sent."""
    new = asyncio.run(room_notices(running, token))
    new.sort()
    return next((at for at, body in new[after:] if word in body), None)


def first_call(hook: Receiver, after: int) -> float | None:
    """When the first firing webhook call after the first `after` came."""
    return next((c.at for c in hook.received()[after:] if c.body.get("status") == "firing"), None)


def wait_for(found: Any, what: str) -> float:
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        at = found()
        if at is not None:
            return float(at)
        time.sleep(0.5)
    raise SystemExit(f"no {what} within {GUARD_S:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="homeport-bench-alerts-") as tmp,
        Receiver().running() as hook,
    ):
        config = init_deployment(Path(tmp))
        edit_yaml(config, lambda data: data["alerts"].update({"webhook": {"url": hook.url}}))
        running = RunningDeployment(config)
        running.start()
        try:
            alerts = running.deployment.alerts
            assert alerts is not None
            grace = duration_ms(alerts.grace) / 1000
            settle = duration_ms(alerts.settle) / 1000
            password = secrets.token_urlsafe(12)
            homeport("user", "create", "-c", str(config), "internal", "benchadmin", "--admin",
                     "--password", password)  # fmt: skip
            token, _ = asyncio.run(
                access_token(
                    running.deployment,
                    "internal",
                    "benchadmin",
                    password,
                )
            )
            figures: dict[str, list[float]] = {"room": [], "webhook": [], "recovery": []}
            for number in range(1, args.rounds + 1):
                seen = len(asyncio.run(room_notices(running, token)))
                calls = len(hook.received())
                stopped = time.time()
                homeport("stop", "-c", str(config), "external")

                room_at = (
                    wait_for(
                        partial(first_notice, running, token, seen, "alert"), "alert in the room"
                    )
                    - stopped
                )
                hook_at = wait_for(partial(first_call, hook, calls), "webhook call") - stopped
                started = time.time()
                homeport("start", "-c", str(config), "external", timeout=240)
                back_at = (
                    wait_for(
                        partial(first_notice, running, token, seen, "recovered"),
                        "recovery in the room",
                    )
                    - started
                )
                figures["room"].append(room_at)
                figures["webhook"].append(hook_at)
                figures["recovery"].append(back_at)
                print(
                    f"round {number}: told in the room {room_at:.1f} s and on the webhook "
                    f"{hook_at:.1f} s after the stop; recovery told {back_at:.1f} s after "
                    "the start",
                    flush=True,
                )
            promise = grace + 60
            recovery_promise = settle + 60
            design = (grace + 2 * CHECK_S, settle + 2 * CHECK_S)
            print(
                f"\nalerts (grace {grace:.0f} s, settle {settle:.0f} s, a check every "
                f"{CHECK_S:.0f} s; worst by design {design[0]:.0f} s and {design[1]:.0f} s "
                f"after the change), {args.rounds} outages:"
            )
            for label, values, bound in (
                ("alert in the room", figures["room"], promise),
                ("alert on the webhook", figures["webhook"], promise),
                ("recovery in the room", figures["recovery"], recovery_promise),
            ):
                worst = max(values)
                print(
                    f"  {label:<22} median {statistics.median(values):6.1f} s, worst "
                    f"{worst:6.1f} s; promised {bound:.0f} s: {worst / bound:.2f}x "
                    f"({'on time' if worst <= bound else 'LATE'})"
                )
            total = len([c for c in hook.received() if c.body.get("status") == "firing"])
            print(f"  webhook firing calls: {total} for {args.rounds} outages (one each)")
        finally:
            running.stop()
            running.kill_leftovers()


if __name__ == "__main__":
    main()
