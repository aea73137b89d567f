"""500 messages recorded at once while four exporters and a status poller read the store.

The store's writer (the bot, one transaction per Synapse transaction) and its
readers (exports, status) share one SQLite file or one PostgreSQL database.
None may make the bot fail a transaction: a 500 makes Synapse back off (2 s,
4 s, ... 512 s), which is how a message once came to be recorded 260 s after
it was sent. On the settings Homeport ships; the sender's rate limit is lifted
by Synapse's admin API, as an integration's account would be (2 messages/s
would make 500 messages take four minutes).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from homeport.audit.registration import BOT_ADDRESS
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.api import SynapseClient
from homeport.trust import client_ssl_context
from tests.audit_helpers import client_for, create_room, text, wait_recorded_async
from tests.audit_readers import Readers
from tests.harness import (
    RunningDeployment,
    edit_yaml,
    homeport,
    init_deployment,
    running_deployment,
)

pytestmark = pytest.mark.e2e

MESSAGES = 500
AT_ONCE = 4  # requests in flight: Synapse batches what waits into one transaction
LATE_S = 30  # honest on a shared 2-core machine; a failed transaction costs minutes


async def unlimited_sender(
    running: RunningDeployment, context: ssl.SSLContext
) -> tuple[str, SynapseClient]:
    _, root = await client_for(running, "internal", context, admin=True)
    user_id, client = await client_for(running, "internal", context)
    async with SynapseAdmin(root) as admin:
        await admin.override_ratelimit(user_id)
    return user_id, client


async def send_all(client: SynapseClient, room: str) -> list[str]:
    queue = list(range(MESSAGES))
    sent: list[str] = []

    async def worker() -> None:
        while queue:
            n = queue.pop(0)
            sent.append(await text(client, room, f"load {n}"))

    await asyncio.gather(*(worker() for _ in range(AT_ONCE)))
    return sent


def failed_transactions(port: int) -> float:
    """The bot's count of transactions it answered 500 (could not store)."""
    metrics = httpx.get(f"http://{BOT_ADDRESS}:{port}/metrics", timeout=10).text
    failed = r'^homeport_audit_transactions_total\{outcome="failed"\} (\S+)$'
    found = re.search(failed, metrics, re.M)
    return float(found.group(1)) if found else 0.0


def locked_lines(directory: Path) -> list[str]:
    """'database is locked' anywhere in the deployment's logs and the readers' reports."""
    lines = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and (path.suffix in (".log", ".out", ".json") or "log" in path.name):
            for line in path.read_text(errors="replace").splitlines():
                if "database is locked" in line:
                    lines.append(f"{path.name}: {line[:300]}")
    return lines


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_500_messages_are_recorded_promptly_while_the_store_is_read(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    config = init_deployment(tmp_path / "deployment")
    if database == "postgresql":
        url: str = request.getfixturevalue("postgres_database")

        def store_on_postgresql(data: Any) -> None:
            data["store"] = {"database": url}

        edit_yaml(config, store_on_postgresql)
    with running_deployment(config) as running:
        context = client_ssl_context(running.deployment)
        port = running.deployment.homeservers["internal"].audit_bot.port  # type: ignore[union-attr]
        _, alice = await unlimited_sender(running, context)
        async with alice:
            room = await create_room(alice, preset="private_chat")
            homeport("audit", "add", "-c", str(config), "internal", room)
            with Readers(config, "internal", room, tmp_path / "readers") as readers:
                sent = await send_all(alice, room)

                def complete(events: list[Any]) -> bool:
                    return set(sent) <= {e.event_id for e in events}

                events = await wait_recorded_async(running, "internal", room, complete, 60)
                report = readers.stop()
        failed = await asyncio.to_thread(failed_transactions, port)

    mine = [e for e in events if e.event_id in set(sent)]
    assert sorted(e.event_id for e in mine) == sorted(sent)  # none lost, none twice
    delivered = [(e.received_ts - e.origin_server_ts) / 1000 for e in mine]
    readable = [report.seen[e.event_id] - e.origin_server_ts / 1000 for e in mine]
    figures = (
        f"delivered p50 {percentile(delivered, 0.5):.2f} s, max {max(delivered):.2f} s; "
        f"readable p50 {percentile(readable, 0.5):.2f} s, p95 {percentile(readable, 0.95):.2f} s, "
        f"max {max(readable):.2f} s; {report.exports} exports, {report.polls} status polls"
    )
    print(f"\n{database}: {figures}")
    assert max(delivered) < LATE_S, figures
    assert max(readable) < LATE_S, figures
    assert failed == 0, f"the bot answered {failed:.0f} transactions 500; {figures}"
    assert report.errors == []
    assert report.exports >= 4, figures  # they did read meanwhile
    assert report.polls >= 1, figures
    assert locked_lines(tmp_path) == []
