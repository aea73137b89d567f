"""The audit bot's HTTP side: Synapse's application service API, /health and /metrics.

A transaction is answered 200 only after its events are committed to the
store. Any failure answers 500, and Synapse keeps the transaction and sends
it again (its recoverer backs off 2 s, 4 s, ... up to 512 s; the bot's ping
at start makes it retry at once). Events already stored are skipped by their
unique event ID, so a transaction sent twice records nothing twice.

Synapse numbers its transactions 1, 2, 3... and sends them one at a time. A
transaction created while its recoverer finishes is left unsent until the
next failure (the sender saw the service down, the recoverer had already
looked for the oldest unsent one: docs/synapse-notes.md). So a number
skipped is answered 500, once: that starts the recoverer, which sends the
skipped one first.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeport.audit import store
from homeport.audit.records import EventRecord, RoomChange, record_of, room_change

logger = logging.getLogger("homeport.audit")

MAX_TRANSACTION_BYTES = 64 * 1024 * 1024


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.transactions = Counter(
            "homeport_audit_transactions",
            "Transactions from Synapse, by outcome",
            ["outcome"],
            registry=r,
        )
        self.events = Counter("homeport_audit_events_recorded", "Events newly recorded", registry=r)
        self.duplicates = Counter(
            "homeport_audit_events_already_recorded",
            "Events Synapse sent again that were already recorded",
            registry=r,
        )
        self.lag = Histogram(
            "homeport_audit_commit_lag_seconds",
            "From an event's origin_server_ts until it was committed to the store",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.ready = Gauge("homeport_audit_ready", "1 once registered with Synapse", registry=r)


@dataclass
class BotState:
    """What the app shares with the bot's start-up and background tasks."""

    homeserver: str
    bot_user_id: str
    hs_token: str
    engine: Engine
    metrics: Metrics = field(default_factory=Metrics)
    ready: bool = False
    problem: str = "starting"
    # Work that follows a commit (decryption, the continuous export): run by
    # `follow` after the transaction is acknowledged, so a failure there never
    # makes Synapse resend, and never holds up recording.
    followers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # An event's content as sent, for one that arrives already redacted.
    original: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None
    gaps: TransactionGaps = field(default_factory=lambda: TransactionGaps())


@dataclass
class TransactionGaps:
    """Which of Synapse's transaction numbers went missing, seen from this process."""

    highest: int | None = None
    refused: set[int] = field(default_factory=set)  # numbers answered 500 for a gap

    def missing_before(self, txn_id: str) -> range | None:
        """The numbers skipped before `txn_id` if it should be refused for them, else None.

        Each transaction is refused for a gap at most once, so a gap that never
        fills (Synapse lost it for good) costs one retry, never a loop.
        """
        number = _number(txn_id)
        if number is None or self.highest is None or number <= self.highest + 1:
            return None
        if number in self.refused:
            return None
        self.refused.add(number)
        return range(self.highest + 1, number)

    def stored(self, txn_id: str) -> None:
        number = _number(txn_id)
        if number is not None and (self.highest is None or number > self.highest):
            self.highest = number
            self.refused = {n for n in self.refused if n > number}


def _number(txn_id: str) -> int | None:
    return int(txn_id) if txn_id.isdigit() and len(txn_id) < 19 else None


def _authorised(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else ""
    given = given or request.query_params.get("access_token", "")
    return hmac.compare_digest(given.encode(), token.encode())


def _error(status: int, errcode: str, message: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "error": message}, status_code=status)


def create_app(state: BotState) -> Starlette:
    def unauthorised(request: Request) -> Response | None:
        if _authorised(request, state.hs_token):
            return None
        return _error(403, "M_FORBIDDEN", "Bad hs_token")

    def split(events: list[Any], now_ms: int) -> tuple[list[EventRecord], list[RoomChange]]:
        records = [r for r in (record_of(e, now_ms) for e in events if isinstance(e, dict)) if r]
        changes = [
            c
            for c in (room_change(e, state.bot_user_id) for e in events if isinstance(e, dict))
            if c
        ]
        return records, changes

    async def unredacted(events: list[Any]) -> list[Any]:
        """Events that reach the bot redacted are recorded as they were sent, while Synapse
        still has that: a transaction Synapse sends again is read anew from its database,
        so an event redacted meanwhile comes redacted (the bot failed to store it, or
        Synapse restarted with the transaction pending)."""
        restored = []
        for event in events:
            unsigned = event.get("unsigned") if isinstance(event, dict) else None
            if (
                state.original is not None
                and isinstance(unsigned, dict)
                and "redacted_because" in unsigned
            ):
                try:
                    content = await state.original(str(event.get("event_id")))
                except Exception:  # recorded as it came: better than not at all
                    logger.exception("could not read a redacted event's original")
                    content = None
                if content is not None:
                    event = {**event, "content": content}
            restored.append(event)
        return restored

    async def transaction(request: Request) -> Response:
        refused = unauthorised(request)
        if refused is not None:
            return refused
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_TRANSACTION_BYTES:  # never held whole in memory
                return _error(413, "M_TOO_LARGE", "transaction too large")
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "M_NOT_JSON", "not JSON")
        txn_id = request.path_params["txn_id"]
        missing = state.gaps.missing_before(txn_id)
        if missing is not None:
            logger.warning(
                "transactions skipped: refusing the next one once so that Synapse sends them",
                extra={"missing": f"{missing.start}..{missing.stop - 1}", "txn": txn_id},
            )
            state.metrics.transactions.labels("refused_for_gap").inc()
            return _error(
                500,
                "M_UNKNOWN",
                f"transactions {missing.start}..{missing.stop - 1} never arrived: send them first",
            )
        events = body.get("events", []) if isinstance(body, dict) else []
        events = await unredacted(events if isinstance(events, list) else [])
        records, changes = split(events, _now_ms())
        try:
            new = await anyio.to_thread.run_sync(
                store.record, state.engine, state.homeserver, records, changes
            )
        except Exception:
            # Not acknowledged: Synapse keeps the transaction and sends it again.
            logger.exception("could not store transaction %s", txn_id)
            state.metrics.transactions.labels("failed").inc()
            return _error(500, "M_UNKNOWN", "not stored; send it again")
        committed = _now_ms()
        state.gaps.stored(txn_id)
        state.metrics.transactions.labels("stored").inc()
        state.metrics.events.inc(new)
        state.metrics.duplicates.inc(len(records) - new)
        for record in records:
            state.metrics.lag.observe(max(0, committed - record.origin_server_ts) / 1000)
        if new:
            state.changed.set()
        return JSONResponse({})

    async def user_query(request: Request) -> Response:
        refused = unauthorised(request)
        if refused is not None:
            return refused
        if request.path_params["user_id"] == state.bot_user_id:
            return JSONResponse({})
        return _error(404, "M_NOT_FOUND", "not a user of this application service")

    async def room_query(request: Request) -> Response:
        refused = unauthorised(request)
        return refused or _error(404, "M_NOT_FOUND", "this application service has no aliases")

    async def ping(request: Request) -> Response:
        return unauthorised(request) or JSONResponse({})

    async def health(_request: Request) -> Response:
        if state.ready:
            return JSONResponse({"status": "ok", "user_id": state.bot_user_id})
        return JSONResponse({"status": state.problem}, status_code=503)

    async def metrics(_request: Request) -> Response:
        return Response(
            generate_latest(state.metrics.registry), media_type="text/plain; version=0.0.4"
        )

    prefixes = ("/_matrix/app/v1", "")  # the spec's paths, and the legacy unprefixed ones
    routes = [
        route
        for prefix in prefixes
        for route in (
            Route(prefix + "/transactions/{txn_id}", transaction, methods=["PUT"]),
            Route(prefix + "/users/{user_id}", user_query, methods=["GET"]),
            Route(prefix + "/rooms/{alias}", room_query, methods=["GET"]),
        )
    ]
    routes += [
        Route("/_matrix/app/v1/ping", ping, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes)


async def follow(state: BotState) -> None:
    """Run the followers each time new records were committed (each failure logged)."""
    while True:
        await state.changed.wait()
        state.changed.clear()
        for follower in state.followers:
            try:
                await follower()
            except Exception:
                logger.exception("after-commit work failed; it runs again with the next records")


def _now_ms() -> int:
    return int(time.time() * 1000)
