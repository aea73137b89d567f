#!/usr/bin/env python3
"""Conference service: how long Prosody waits for `/verify/user_in_room`.

On the starter deployment as `homeport init` writes it (plus a room on
external that users of internal join), in rounds of one request of each
kind below, interleaved so that the baseline and the service see the same
moments of a shared machine (the order rotates each round):

  baseline    internal's own `GET /_matrix/federation/v1/openid/userinfo`
              for fresh OpenID tokens, asked directly: p50, p95
  uncached    `/verify/user_in_room` for an internal user in external's room,
              each token presented for the first time (the service asks
              internal for the token, then the user's membership): p50, p95,
              and the ratio of p95 to the baseline's in the same run (target:
              p95 < 200 ms and within 3x)
  cached      the same question again with a token already checked
              (target: p95 < 20 ms)
  hop         `GET /health` of the service: what reaching it costs, for
              the breakdown

Requests go one at a time, paced under the service's per-caller limit
(20 per second), over one kept-alive connection, as Prosody's would.

    .venv/bin/python bench/conference.py --requests 100
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeport.trust import client_ssl_context  # noqa: E402
from tests.harness import (  # noqa: E402
    RunningDeployment,
    access_token,
    init_deployment,
    run_sync,
    status_json,
)

PACE_SECONDS = 1 / 15  # below the per-caller limit of 20 requests per second


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values) * 1000:.1f} ms, "
        f"p95 {percentile(values, 0.95) * 1000:.1f} ms"
    )


def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def answering(http: httpx.Client, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} not answering after {timeout} s"
        time.sleep(0.5)


def joined_fully(http: httpx.Client, base_url: str, token: str, room: str) -> None:
    """Wait until the room is in the joiner's sync: the remote join is no longer partial.

    Synapse completes a partial-state join in the background (docs/synapse-notes.md);
    measuring before it ends would time that work too.
    """
    deadline = time.monotonic() + 120
    since: str | None = None
    while True:
        params = {"timeout": "1000", **({"since": since} if since else {})}
        answer = http.get(
            f"{base_url}/_matrix/client/v3/sync",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if room in body.get("rooms", {}).get("join", {}):
            return
        since = body["next_batch"]
        assert time.monotonic() < deadline, f"{room} not in the joiner's sync after 120 s"


def paced(seconds: float) -> float:
    """After a request to the service: stay under its per-caller limit."""
    time.sleep(PACE_SECONDS)
    return seconds


def interleaved(kinds: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """One request of each kind per round, the order rotated each round so that no
    kind always follows the same one."""
    names = list(kinds)
    times: dict[str, list[float]] = {name: [] for name in names}
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(kinds[name]())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="homeport-bench-conference-"))
    config = init_deployment(work / "deployment")
    running = RunningDeployment(config)
    running.start()
    try:
        deployment = running.deployment
        assert deployment.conference is not None
        internal = deployment.homeservers["internal"]
        external = deployment.homeservers["external"]
        conference = status_json(config)["conference"]
        secret = Path(conference["auth_token_file"]).read_text().strip()
        auth = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(verify=client_ssl_context(deployment), timeout=30) as http:
            answering(http, f"{conference['url']}/health")
            alice_id, alice_pw = run_sync(running.new_user("internal"))
            bob_id, bob_pw = run_sync(running.new_user("external"))
            alice = run_sync(access_token(deployment, "internal", alice_id, alice_pw))[0]
            bob = run_sync(access_token(deployment, "external", bob_id, bob_pw))[0]
            room = http.post(
                f"{external.base_url}/_matrix/client/v3/createRoom",
                headers={"Authorization": f"Bearer {bob}"},
                json={"preset": "public_chat"},
            ).json()["room_id"]
            joined = http.post(
                f"{internal.base_url}/_matrix/client/v3/join/{quote(room)}",
                params={"server_name": external.server_name},
                headers={"Authorization": f"Bearer {alice}"},
                json={},
            )
            assert joined.status_code == 200, joined.text
            joined_fully(http, internal.base_url, alice, room)

            def fresh_token() -> str:
                answer = http.post(
                    f"{internal.base_url}/_matrix/client/v3/user/{quote(alice_id)}"
                    "/openid/request_token",
                    headers={"Authorization": f"Bearer {alice}"},
                    json={},
                )
                assert answer.status_code == 200, answer.text
                return str(answer.json()["access_token"])

            def verify(token: str) -> None:
                answer = http.post(
                    f"{conference['url']}/verify/user_in_room",
                    json={
                        "token": token,
                        "matrix_server_name": internal.server_name,
                        "room_id": room,
                    },
                    headers=auth,
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["results"] == {"user": True, "room_membership": True}

            def userinfo(token: str) -> None:
                answer = http.get(
                    f"{internal.base_url}/_matrix/federation/v1/openid/userinfo",
                    params={"access_token": token},
                )
                assert answer.status_code == 200, answer.text

            verify(fresh_token())  # the service's admin logins and connections, once
            known = fresh_token()
            verify(known)

            def baseline() -> float:
                token = fresh_token()
                return timed(lambda: userinfo(token))[0]

            def uncached() -> float:
                token = fresh_token()
                return paced(timed(lambda: verify(token))[0])

            def cached() -> float:
                return paced(timed(lambda: verify(known))[0])

            def hop() -> float:
                return timed(lambda: http.get(f"{conference['url']}/health"))[0]

            times = interleaved(
                {"baseline": baseline, "uncached": uncached, "cached": cached, "hop": hop},
                args.requests,
            )
        print(
            f"{args.requests} rounds of one request of each kind, one at a time, "
            "the order rotating each round"
        )
        print(f"baseline: internal's own openid/userinfo: {summary(times['baseline'])}")
        print(f"the hop to the service alone (GET /health): {summary(times['hop'])}")
        ratio = percentile(times["uncached"], 0.95) / percentile(times["baseline"], 0.95)
        median_ratio = statistics.median(times["uncached"]) / statistics.median(times["baseline"])
        print(
            f"/verify/user_in_room, uncached: {summary(times['uncached'])} "
            f"(target p95 < 200 ms); p95 / baseline p95 {ratio:.2f} (target <= 3), "
            f"p50 / baseline p50 {median_ratio:.2f}"
        )
        print(f"/verify/user_in_room, cached: {summary(times['cached'])} (target p95 < 20 ms)")
    finally:
        running.stop()
        running.kill_leftovers()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from bench.run_info import announced

    with announced():
        main()
