"""Internal with Synapse workers on this machine's PostgreSQL and Redis, run by `up`,
on the rate limits and federation retries Homeport ships.

Two generic workers, a media worker, two federation senders, a pusher and
an event persister beside internal's main process, behind the nginx `up`
runs (`proxy.managed`), the server names resolving to it (scripts/test's
/etc/hosts names). `up` starts the workers once the main process is ready
and `status` lists each; messages cross both ways (sent through a generic
worker, written by the persister, sent on by the senders, received by a
generic worker), media are served by the media worker, verify finds no
mismatch (the admin API stays on the main process), the Federation tab
works, and workers killed with SIGKILL are restarted without a message lost.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from homeport.trust import client_ssl_context
from tests.admin.website import log_in
from tests.harness import (
    RunningDeployment,
    access_token,
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
    "internal-generic-1",
    "internal-generic-2",
    "internal-media-1",
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


def _wait_services(config: Path, names: list[str], running: RunningDeployment) -> dict[str, Any]:
    """Every service in `names` ready (workers start once their main process is)."""
    deadline = time.monotonic() + 120
    while True:
        services: dict[str, Any] = status_json(config)["services"]
        states = {name: services.get(name, {}).get("state") for name in names}
        if all(state == "ready" for state in states.values()):
            return services
        assert time.monotonic() < deadline, (states, running.output())
        time.sleep(1)


def _verify_finds_no_mismatch(config: Path) -> None:
    """The admin API (verify's probes) is the main process's, the state in PostgreSQL."""
    verified = homeport("verify", "-c", str(config), "--json", check=False, timeout=300)
    report = json.loads(verified.stdout)
    assert [c for c in report["checks"] if not c["ok"]] == []


async def _exchange(
    running: RunningDeployment,
    context: ssl.SSLContext,
    alice: dict[str, str],
    bob: dict[str, str],
    alias: str,
) -> None:
    """`exchange_messages`, with the deployment's warnings and errors when it fails."""
    try:
        await exchange_messages(running, context, alice, bob, alias)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{running.log_problems()}") from error


PROXY = "127.10.0.1"  # where scripts/test makes the .homeport.test names resolve


def _from_loopback(context: ssl.SSLContext) -> httpx.AsyncClient:
    """A client whose requests leave from 127.0.0.1 (in `admin_from`)."""
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.1", verify=context)
    return httpx.AsyncClient(transport=transport, timeout=30)


async def test_generic_and_media_workers_serve_behind_the_nginx_up_runs(
    tmp_path: Path, postgres_databases: Callable[[], str]
) -> None:
    """Server names resolve to nginx (`proxy.managed`), which routes to the workers."""
    config = init_deployment(tmp_path)  # the rate limits and retries Homeport ships
    database = postgres_databases()
    port_base = free_port_run(8)
    proxy_port = free_port_run(1)

    def behind_nginx(data: Any) -> None:
        for name, hs in data["homeservers"].items():
            hs["server_name"] = f"{name}.homeport.test:{proxy_port}"
        internal = data["homeservers"]["internal"]
        internal["database"] = database
        internal["workers"] = {
            "generic": 2,
            "media": 1,
            "federation_senders": 2,
            "pushers": 1,
            "event_persisters": 1,
            "port_base": port_base,
        }
        data["admin"]["host"] = "admin.homeport.test"
        data["conference"]["host"] = "meet.homeport.test"
        data["proxy"] = {"address": PROXY, "port": proxy_port, "managed": True}
        data["redis"] = {"url": "redis://127.0.0.1:6379"}

    edit_yaml(config, behind_nginx)
    running = RunningDeployment(config)
    try:
        running.start()
        services = _wait_services(config, ["proxy", *WORKERS], running)
        assert services["internal-federation-sender-1"]["kind"] == "Synapse worker"
        deployment = running.deployment
        internal = deployment.homeservers["internal"]
        assert internal.base_url == f"https://internal.homeport.test:{proxy_port}"

        context = client_ssl_context(deployment)
        alice = dict(zip(("user_id", "password"), await running.new_user("internal"), strict=True))
        bob = dict(zip(("user_id", "password"), await running.new_user("external"), strict=True))
        await _exchange(running, context, alice, bob, "through-nginx")

        # A file uploaded through nginx, served back by the media worker.
        token = (await access_token(deployment, "internal", alice["user_id"], alice["password"]))[0]
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=internal.base_url, verify=context) as http:
            uploaded = await http.post(
                "/_matrix/media/v3/upload",
                content=b"served by a worker",
                headers={**headers, "Content-Type": "application/octet-stream"},
            )
            assert uploaded.status_code == 200, uploaded.text
            server, media_id = uploaded.json()["content_uri"].removeprefix("mxc://").split("/")
            fetched = await http.get(
                f"/_matrix/client/v1/media/download/{server}/{media_id}", headers=headers
            )
            assert fetched.status_code == 200, fetched.text
            assert fetched.content == b"served by a worker"

        # Which process served what: each worker logs the requests it processed.
        files = running.layout.homeserver("internal")

        def served(worker: str) -> str:
            return files.worker_log_file(worker).read_text(errors="replace")

        generic = served("generic-1") + served("generic-2")
        assert "/_matrix/client/v3/rooms/" in generic  # event sending
        assert "/_matrix/federation/v1/send/" in generic  # inbound federation
        assert "/sync" in generic
        media = served("media-1")
        assert "/_matrix/media/v3/upload" in media
        assert f"/_matrix/client/v1/media/download/{server}/{media_id}" in media
        main_log = files.log_file.read_text(errors="replace")
        assert "/_matrix/media/v3/upload" not in main_log

        # Verify, and the Federation tab (through nginx, from an admin's address).
        _verify_finds_no_mismatch(config)
        admin_id, password = await running.new_user("internal", admin=True)
        assert deployment.admin_url is not None
        async with _from_loopback(context) as website:
            website.base_url = httpx.URL(deployment.admin_url)
            assert (await log_in(website, "internal", admin_id, password)).status_code == 303
            page = await website.get("/federation")
            assert page.status_code == 200, page.text
            assert deployment.homeservers["external"].server_name in page.text

        # `restart` renders and restarts the workers with their homeserver; `stop`
        # takes them along, `start` brings them back once the main process is ready.
        before = {name: status_json(config)["services"][name]["pid"] for name in WORKERS}
        homeport("restart", "-c", str(config), "internal", timeout=600)
        after = status_json(config)["services"]
        for name in WORKERS:
            assert after[name]["state"] == "ready", after[name]
            assert after[name]["pid"] != before[name], name
        homeport("stop", "-c", str(config), "internal", timeout=300)
        stopped = status_json(config)["services"]
        assert {stopped[name]["state"] for name in ["internal", *WORKERS]} == {"stopped"}
        homeport("start", "-c", str(config), "internal", timeout=600)
        started = status_json(config)["services"]
        assert {started[name]["state"] for name in ["internal", *WORKERS]} == {"ready"}

        # Workers killed outright come back; nothing is lost.
        for name in ("internal-generic-1", "internal-federation-sender-1"):
            pid = status_json(config)["services"][name]["pid"]
            os.kill(pid, signal.SIGKILL)
            _wait_restarted(config, name, pid)
        await _exchange(running, context, alice, bob, "after-kill")
        assert running.stop() == 0
        assert synapse_pids(running.deployment.data_dir) == []
    finally:
        if running.process is not None:
            running.stop()
        running.kill_leftovers()
