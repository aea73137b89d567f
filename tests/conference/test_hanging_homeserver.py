"""A homeserver that hangs: the conference service answers within its bounds and stays open.

The starter runs as `homeport init` writes it (`homeport up`: both Synapses,
the conference service); then internal's Synapse is stopped and a listener
that accepts connections and never sends a byte takes its port, as a
homeserver that hangs would (its TLS handshake never ends). docs/conference.md
promises: every call to a homeserver has a 10-second timeout and answers 503
`M_UNAVAILABLE` (Prosody: `"user": false`, the log saying `<server> cannot be
reached`); at most 32 checks with homeservers at once (a flood waits); at most
512 connections served (beyond: uvicorn's 503 at once).

The 60 s bounds below guard against a hang; they are not speed assertions.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from homeport.conference.fetch import OUTBOUND_TIMEOUT
from homeport.conference.matrix import MAX_OUTBOUND
from homeport.conference.server import MAX_CONNECTIONS
from homeport.trust import client_ssl_context
from tests.conference.hostile import Silent
from tests.harness import (
    RunningDeployment,
    access_token,
    homeport,
    init_deployment,
    run_sync,
    running_deployment,
    status_json,
)

pytestmark = pytest.mark.e2e

GUARD = 60.0  # against a hang, far above the service's own bound
ROOM = "!anywhere:localhost"


@dataclass
class Hung:
    running: RunningDeployment
    tls: ssl.SSLContext
    url: str  # the conference service
    auth: dict[str, str]  # Prosody's bearer token
    hung: str  # internal's server name: its port is the silent listener's
    hung_port: int
    external: str
    external_url: str
    bob: str  # a user of external
    bob_token: str  # bob's client access token
    service_pid: int  # the conference service's process

    def client(self, connections: int = 10) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=0)
        return httpx.AsyncClient(base_url=self.url, verify=self.tls, timeout=GUARD, limits=limits)

    async def openid(self) -> str:
        """A real OpenID token of bob's, from external, as Element asks for one."""
        async with httpx.AsyncClient(verify=self.tls, timeout=GUARD) as http:
            answer = await http.post(
                f"{self.external_url}/_matrix/client/v3/user/{quote(self.bob)}"
                "/openid/request_token",
                headers={"Authorization": f"Bearer {self.bob_token}"},
                json={},
            )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])


def _wait_for_service(url: str, tls: ssl.SSLContext, running: RunningDeployment) -> None:
    deadline = time.monotonic() + 120
    with httpx.Client(verify=tls, timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    raise AssertionError(f"the conference service never answered /health:\n{running.output()}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hung]:
    config = init_deployment(tmp_path_factory.mktemp("hanging"))
    with running_deployment(config) as running:
        dep = running.deployment
        assert dep.conference is not None
        tls = client_ssl_context(dep)
        _wait_for_service(dep.conference.url, tls, running)
        status = status_json(config)
        auth_file = Path(status["conference"]["auth_token_file"])
        bob, password = run_sync(running.new_user("external"))
        bob_token = run_sync(access_token(dep, "external", bob, password))[0]
        homeport("stop", "-c", str(config), "internal")
        # Internal's audit bot and the alerts service (which checks every homeserver
        # every 15 s) run in the same process as the conference service (Homeport's
        # services share one host) and would knock on the silent port too: the
        # connections counted must be the conference service's alone.
        homeport("stop", "-c", str(config), "audit-internal")
        homeport("stop", "-c", str(config), "alerts")
        internal, external = dep.homeservers["internal"], dep.homeservers["external"]
        yield Hung(
            running,
            tls,
            dep.conference.url,
            {"Authorization": f"Bearer {auth_file.read_text().strip()}"},
            internal.server_name,
            internal.port,
            external.server_name,
            external.base_url,
            bob,
            bob_token,
            status["services"]["conference"]["pid"],
        )


@pytest.fixture
async def silent(deployment: Hung) -> AsyncIterator[Silent]:
    """A fresh silent listener on internal's port, for each test; it counts the
    connections of the conference service's process (internal's audit bot, which
    shares it, is held stopped)."""
    listener = Silent(counted=deployment.service_pid)
    await listener.start(deployment.hung_port)
    try:
        yield listener
    finally:
        await listener.stop()


def _unreachable(server: str) -> str:
    return f"{server} cannot be reached (no answer within {OUTBOUND_TIMEOUT:g} s); " + (
        "try again when it is back"
    )


def _jitsi_body(server: str) -> dict[str, Any]:
    return {"token": secrets.token_urlsafe(), "matrix_server_name": server, "room_id": ROOM}


def _log_reasons(path: Path, server: str) -> list[str]:
    """The reasons the service logged for tokens of `server` it could not vouch for."""
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        str(entry.get("reason"))
        for entry in entries
        if entry.get("event") == "token not vouched for" and entry.get("server") == server
    ]


async def _answers(
    checks: list[asyncio.Task[httpx.Response]], guard: float
) -> list[httpx.Response]:
    """The checks' answers; an AssertionError if they have not all come within `guard`."""
    try:
        async with asyncio.timeout(guard):
            return list(await asyncio.gather(*checks))
    except (TimeoutError, httpx.TimeoutException):
        waiting = sum(not c.done() or c.cancelled() or c.exception() is not None for c in checks)
        raise AssertionError(
            f"{waiting} of {len(checks)} callers had no answer within {guard:g} s "
            "from a service whose homeserver hangs"
        ) from None


async def test_a_homeserver_that_hangs_gets_the_documented_answer_while_others_are_served(
    deployment: Hung, silent: Silent
) -> None:
    token = await deployment.openid()
    async with deployment.client() as http:
        client_side = asyncio.create_task(
            http.post("/jitsi/token", json=_jitsi_body(deployment.hung))
        )
        prosody = asyncio.create_task(
            http.post(
                "/verify/user",
                json={"token": secrets.token_urlsafe(), "matrix_server_name": deployment.hung},
                headers=deployment.auth,
            )
        )
        # Both checks are now waiting on the hanging homeserver.
        await silent.wait_open(2)

        # Meanwhile, other callers are served: health, and a real token of external's.
        assert (await http.get("/health")).status_code == 200
        vouched = await http.post(
            "/verify/user",
            json={"token": token, "matrix_server_name": deployment.external},
            headers=deployment.auth,
        )
        assert vouched.status_code == 200, vouched.text
        assert vouched.json() == {"results": {"user": True}, "user_id": deployment.bob}
        ended = [check for check in (client_side, prosody) if check.done()]
        assert ended == [], f"checks with the hanging homeserver ended before: {ended}"

        refused, unvouched = await _answers([client_side, prosody], GUARD)

    assert refused.status_code == 503, refused.text
    assert refused.json() == {
        "errcode": "M_UNAVAILABLE",
        "error": _unreachable(deployment.hung),
    }
    assert unvouched.status_code == 200, unvouched.text
    assert unvouched.json() == {"results": {"user": False}, "user_id": None}
    log = deployment.running.layout.conference_log
    assert _unreachable(deployment.hung) in _log_reasons(log, deployment.hung)
    # Given up on, the connections are closed, not left to the garbage collector.
    assert silent.accepted == 2
    await silent.wait_all_closed()


async def test_at_most_32_checks_wait_on_homeservers_at_once_and_the_rest_queue(
    deployment: Hung, silent: Silent
) -> None:
    callers = MAX_OUTBOUND + 8
    assert MAX_OUTBOUND == 32  # what docs/conference.md promises
    async with deployment.client(connections=callers + 2) as http:
        checks = [
            asyncio.create_task(http.post("/jitsi/token", json=_jitsi_body(deployment.hung)))
            for _ in range(callers)
        ]
        await silent.wait_open(MAX_OUTBOUND)
        # The service itself still answers while its checks are all taken.
        assert (await http.get("/health")).status_code == 200
        answers = await _answers(checks, 3 * GUARD)

    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {
            "errcode": "M_UNAVAILABLE",
            "error": _unreachable(deployment.hung),
        }
    # Each check asked once; the queued ones after the first ones gave up, never beside them.
    assert silent.accepted == callers
    assert silent.most_open == MAX_OUTBOUND
    await silent.wait_all_closed()


async def _hold(url: str, tls: ssl.SSLContext, count: int) -> list[asyncio.StreamWriter]:
    """`count` TLS connections to the service, handshake done, no request sent."""
    address = httpx.URL(url)
    assert address.port is not None
    handshakes = asyncio.Semaphore(32)

    async def one() -> asyncio.StreamWriter:
        async with handshakes:
            _, writer = await asyncio.open_connection(
                address.host, address.port, ssl=tls, server_hostname=address.host
            )
            return writer

    async with asyncio.timeout(GUARD):
        return list(await asyncio.gather(*(one() for _ in range(count))))


async def _close(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    async with asyncio.timeout(GUARD):
        await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


async def test_past_512_connections_a_caller_is_turned_away_at_once(deployment: Hung) -> None:
    assert MAX_CONNECTIONS == 512  # what docs/conference.md promises
    below = MAX_CONNECTIONS - 12
    held = await _hold(deployment.url, deployment.tls, below)
    try:
        async with deployment.client() as http:
            served = await http.get("/health")
            assert served.status_code == 200, f"{below} connections held: {served.text}"
            held += await _hold(deployment.url, deployment.tls, MAX_CONNECTIONS - below)
            # The service counts a connection once its side of the handshake is done.
            deadline = time.monotonic() + GUARD
            while (turned := await http.get("/health")).status_code != 503:
                assert time.monotonic() < deadline, (
                    f"{len(held)} connections held for {GUARD:g} s, a new caller still "
                    f"served: {turned.status_code} {turned.text}"
                )
                await asyncio.sleep(0.1)
            assert turned.text == "Service Unavailable"
    finally:
        await _close(held)
    # Once they are gone, callers are served again.
    async with deployment.client() as http:
        deadline = time.monotonic() + GUARD
        while (again := await http.get("/health")).status_code != 200:
            assert time.monotonic() < deadline, (
                f"held connections closed {GUARD:g} s ago, still {again.status_code}"
            )
            await asyncio.sleep(0.1)
