"""Internal with Synapse workers on this machine's PostgreSQL and Redis, run by `up`.

Two federation senders, an event persister and a pusher beside internal's
main process: `up` starts them once the main process is ready, `status`
lists each, messages cross both ways (internal's events written by the
persister, sent by the senders), verify finds no mismatch (the admin API
stays on the main process), and a sender killed with SIGKILL is restarted
without a message lost.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from homeport.trust import client_ssl_context
from tests.harness import (
    RunningDeployment,
    edit_yaml,
    free_port_run,
    homeport,
    init_deployment,
    status_json,
    synapse_pids,
)
from tests.matrix import exchange_messages

pytestmark = pytest.mark.e2e

WORKERS = [
    "internal-federation-sender-1",
    "internal-federation-sender-2",
    "internal-pusher-1",
    "internal-event-persister-1",
]


def _wait_restarted(config: Path, name: str, old_pid: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service = status_json(config)["services"][name]
        if service["state"] == "ready" and service["pid"] not in (None, old_pid):
            return dict(service)
        time.sleep(1)
    raise AssertionError(f"{name} was not restarted: {status_json(config)['services'][name]}")


async def test_workers_run_beside_the_main_process_and_come_back(
    tmp_path: Path, postgres_databases: Callable[[], str]
) -> None:
    config = init_deployment(tmp_path)
    database = postgres_databases()
    port_base = free_port_run(5)

    def with_workers(data: Any) -> None:
        internal = data["homeservers"]["internal"]
        internal["database"] = database
        internal["workers"] = {
            "federation_senders": 2,
            "pushers": 1,
            "event_persisters": 1,
            "port_base": port_base,
        }
        data["redis"] = {"url": "redis://127.0.0.1:6379"}

    edit_yaml(config, with_workers)
    running = RunningDeployment(config)
    try:
        running.start()
        deadline = time.monotonic() + 120
        while True:
            services = status_json(config)["services"]
            states = {name: services.get(name, {}).get("state") for name in WORKERS}
            if all(state == "ready" for state in states.values()):
                break
            assert time.monotonic() < deadline, (states, running.output())
            time.sleep(1)
        assert services["internal-federation-sender-1"]["kind"] == "Synapse worker"

        context = client_ssl_context(running.deployment)
        alice = dict(zip(("user_id", "password"), await running.new_user("internal"), strict=True))
        bob = dict(zip(("user_id", "password"), await running.new_user("external"), strict=True))
        await exchange_messages(running, context, alice, bob, "workers")

        # The admin API (verify's probes) is on the main process, the state in PostgreSQL.
        verified = homeport("verify", "-c", str(config), "--json", check=False, timeout=300)
        report = json.loads(verified.stdout)
        assert [c for c in report["checks"] if not c["ok"]] == []

        # A sender killed outright is brought back; federation goes on.
        for name in ("internal-federation-sender-1", "internal-federation-sender-2"):
            pid = status_json(config)["services"][name]["pid"]
            os.kill(pid, signal.SIGKILL)
            _wait_restarted(config, name, pid)
        await exchange_messages(running, context, alice, bob, "after-kill")
        # `up` stops every process it started, workers included.
        assert running.stop() == 0
        assert synapse_pids(running.deployment.data_dir) == []
    finally:
        if running.process is not None:
            running.stop()
        running.kill_leftovers()
