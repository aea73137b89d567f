"""The bot's transaction endpoint against a real store: a skipped transaction is asked for.

Synapse strands a transaction created while its recoverer finishes (see
docs/synapse-notes.md; seen in tests/e2e/test_audit_crash.py). The bot
answers the next one 500, once, which starts the recoverer; it sends the
stranded one first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from homeport.audit import store
from homeport.audit.app import BotState, TransactionGaps, create_app
from homeport.config.loader import load_deployment
from homeport.store.database import create_store_engine, store_url
from homeport.store.migrate import migrate
from tests.store.test_store import deployment_file

TOKEN = "hs-token"
ROOM = "!room:localhost:8448"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    deployment = load_deployment(deployment_file(tmp_path, "sqlite"))[0]
    engine = create_store_engine(store_url(deployment))
    migrate(engine)
    yield engine
    engine.dispose()


def _message(n: int) -> dict[str, Any]:
    return {
        "event_id": f"$event{n}",
        "room_id": ROOM,
        "sender": "@alice:localhost:8448",
        "type": "m.room.message",
        "origin_server_ts": 1_700_000_000_000 + n,
        "content": {"msgtype": "m.text", "body": f"message {n}"},
    }


async def test_a_skipped_transaction_is_asked_for_once(engine: Engine) -> None:
    state = BotState("internal", "@audit:localhost:8448", TOKEN, engine)
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as bot:

        async def put(txn: int, n: int) -> httpx.Response:
            return await bot.put(
                f"/_matrix/app/v1/transactions/{txn}",
                json={"events": [_message(n)]},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )

        assert (await put(190, 0)).status_code == 200
        skipped = await put(192, 2)  # 191 was stranded in Synapse
        assert skipped.status_code == 500
        assert skipped.json() == {
            "errcode": "M_UNKNOWN",
            "error": "transactions 191..191 never arrived: send them first",
        }
        # The recoverer sends the oldest first, then the refused one again.
        assert (await put(191, 1)).status_code == 200
        assert (await put(192, 2)).status_code == 200
        assert (await put(193, 3)).status_code == 200
        # A gap that never fills costs one refusal, never a loop.
        assert (await put(200, 4)).status_code == 500
        assert (await put(200, 4)).status_code == 200
    bodies = [r.body for r in store.stream(engine, "internal", store.Filters(room_id=ROOM))]
    assert bodies == [f"message {n}" for n in range(5)]


@pytest.mark.parametrize(
    ("seen", "then", "refused"),
    [
        ([], "7", None),  # the first a process sees: nothing to compare with
        (["7"], "8", None),
        (["7"], "7", None),  # sent again
        (["7"], "5", None),  # an older one, retried
        (["7"], "9", range(8, 9)),
        (["7"], "12", range(8, 12)),
        (["7"], "abc", None),  # not a number: Synapse's are, others are not judged
    ],
)
def test_gaps(seen: list[str], then: str, refused: range | None) -> None:
    gaps = TransactionGaps()
    for txn in seen:
        gaps.stored(txn)
    assert gaps.missing_before(then) == refused
