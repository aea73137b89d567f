"""Internal with Synapse workers on this machine's PostgreSQL and Redis, run by `up`,
on the rate limits and federation retries Homeport ships.

Two generic workers, a media worker, two federation senders, a pusher and
an event persister beside internal's main process, behind the nginx `up`
runs (`proxy.managed`), the server names resolving to it (scripts/test's
/etc/hosts names). `up` starts the workers once the main process is ready
and `status` lists each; the pusher worker posts notifications to a push
gateway; messages cross both ways (sent through a generic worker, written
by the persister, sent on by the senders, received by a generic worker),
media are served by the media worker, verify finds no mismatch (the admin
API stays on the main process), the Federation tab works, and workers
killed with SIGKILL are restarted without a message lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg2
import pytest
import yaml

from homeport.trust import client_ssl_context
from tests.admin.website import log_in
from tests.harness import (
    RunningDeployment,
    access_token,
    edit_yaml,
    homeport,
    init_deployment,
    status_json,
    synapse_pids,
)
from tests.matrix import exchange_messages
from tests.ports import free_port_run
from tests.push_gateway import PushGateway

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


# This machine's PostgreSQL, as tests/conftest.py's `postgres_databases` uses it.
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@contextmanager
def _fresh_database() -> Iterator[str]:
    """A PostgreSQL database with the C collation Synapse requires, dropped afterwards."""
    name = f"homeport_test_{secrets.token_hex(4)}"
    admin = psycopg2.connect(POSTGRES_ADMIN_DSN)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE {name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0"
            )
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    """Internal with every kind of worker behind the nginx `up` runs, on the rate limits
    and retries Homeport ships; when the module is done, `up` stops and takes every
    Synapse process with it."""
    config = init_deployment(tmp_path_factory.mktemp("workers"))
    port_base = free_port_run(8)
    proxy_port = free_port_run(1)
    with _fresh_database() as database:

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
            _wait_services(config, ["proxy", *WORKERS], running)
            yield running
            assert running.stop() == 0
            assert synapse_pids(running.deployment.data_dir) == []
        finally:
            if running.process is not None:
                running.stop()
            running.kill_leftovers()


APP_ID = "org.homeport.test"


async def _pusher(http: httpx.AsyncClient, token: str, pushkey: str, url: str) -> None:
    """An HTTP pusher for the token's user, as a phone's app registers one."""
    answer = await http.post(
        "/_matrix/client/v3/pushers/set",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "kind": "http",
            "app_id": APP_ID,
            "pushkey": pushkey,
            "app_display_name": "Homeport test",
            "device_display_name": "a test",
            "lang": "en",
            "data": {"url": url},
        },
    )
    assert answer.status_code == 200, answer.text


async def _wait_in_log(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} not in {path} within {timeout:g} s"
        await asyncio.sleep(0.5)


async def test_the_pusher_worker_pushes_to_a_gateway_its_homeserver_may_reach(
    workers: RunningDeployment,
) -> None:
    """alice registers two pushers; carol speaks to her. The pusher worker, not the main
    process, posts the notification to the gateway on the one loopback address the
    shipped settings let internal reach (its sibling's, the proxy's: `ip_range_whitelist`);
    the gateway on 127.0.0.1 is refused by Synapse's blocklist."""
    running = workers
    deployment = running.deployment
    internal = deployment.homeservers["internal"]
    files = running.layout.homeserver("internal")
    rendered = yaml.safe_load(files.config_file.read_text())
    assert rendered["ip_range_whitelist"] == [PROXY]
    assert rendered["pusher_instances"] == ["pusher-1"]  # the main process pushes nothing

    reachable, loopback = PushGateway(PROXY), PushGateway("127.0.0.1")
    await reachable.start()
    await loopback.start()
    context = client_ssl_context(deployment)
    try:
        alice_id, alice_password = await running.new_user("internal")
        carol_id, carol_password = await running.new_user("internal")
        alice = (await access_token(deployment, "internal", alice_id, alice_password))[0]
        carol = (await access_token(deployment, "internal", carol_id, carol_password))[0]
        async with httpx.AsyncClient(
            base_url=internal.base_url, verify=context, timeout=60
        ) as http:
            await _pusher(http, alice, "reachable", reachable.url)
            await _pusher(http, alice, "loopback", loopback.url)
            created = await http.post(
                "/_matrix/client/v3/createRoom",
                headers={"Authorization": f"Bearer {alice}"},
                json={"preset": "private_chat", "invite": [carol_id]},
            )
            assert created.status_code == 200, created.text
            room_id = created.json()["room_id"]
            joined = await http.post(
                f"/_matrix/client/v3/join/{quote(room_id)}",
                headers={"Authorization": f"Bearer {carol}"},
                json={},
            )
            assert joined.status_code == 200, joined.text
            sent = await http.put(
                f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/"
                f"{secrets.token_hex(4)}",
                headers={"Authorization": f"Bearer {carol}"},
                json={"msgtype": "m.text", "body": "a push for alice"},
            )
            assert sent.status_code == 200, sent.text
            event_id = sent.json()["event_id"]

        pushed = await reachable.wait_for(
            lambda n: n.notification.get("event_id") == event_id,
            f"notification for {event_id}",
        )
        note = pushed.notification
        assert (note["room_id"], note["sender"], note["type"]) == (
            room_id,
            carol_id,
            "m.room.message",
        )
        assert [(d["app_id"], d["pushkey"]) for d in note["devices"]] == [(APP_ID, "reachable")]

        # Sent by the pusher worker's process, not the main process's.
        services = status_json(running.config_path)["services"]
        assert pushed.sender_pid == services["internal-pusher-1"]["pid"], (
            pushed.sender_pid,
            {name: services[name]["pid"] for name in ["internal", *WORKERS]},
        )
        worker_log = files.worker_log_file("pusher-1")
        assert f"Received response to POST {reachable.url}: 200" in worker_log.read_text()
        main_log = files.log_file.read_text(errors="replace")
        assert "Not starting pushers because they are disabled in the config" in main_log
        assert reachable.url not in main_log

        # The same push to 127.0.0.1 is refused by the blocklist, before any connection.
        await _wait_in_log(
            worker_log,
            f"Failed to push data to {alice_id}/{APP_ID}/loopback: "
            "<class 'synapse.api.errors.SynapseError'> 403: IP address blocked",
        )
        assert "Blocking access to 127.0.0.1" in worker_log.read_text()
        assert loopback.received == []
    finally:
        await reachable.stop()
        await loopback.stop()


async def test_generic_and_media_workers_serve_behind_the_nginx_up_runs(
    workers: RunningDeployment,
) -> None:
    """Server names resolve to nginx (`proxy.managed`), which routes to the workers."""
    running, config = workers, workers.config_path
    services = status_json(config)["services"]
    assert services["internal-federation-sender-1"]["kind"] == "Synapse worker"
    deployment = running.deployment
    internal = deployment.homeservers["internal"]
    assert deployment.proxy is not None
    assert internal.base_url == f"https://internal.homeport.test:{deployment.proxy.port}"

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
