"""The alerts service: a check of every homeserver every CHECK_S, incidents kept, notices sent.

Each round: probe every homeserver's federation port, ask each Synapse what
waits (`observe`), advance its incidents (`incidents.advance`, pure) and write
the step with its notices in one transaction (`store.record_step`); then send
what the outbox holds. A homeserver that does not answer concludes nothing
about its own destinations that round (its siblings report it). `/health`
says how the last round went; `/metrics` has every open incident of a watched
destination, which the Prometheus rules (`homeport render --target
prometheus`) alert on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeport.alerts import store
from homeport.alerts.accounts import ServiceAccounts
from homeport.alerts.deliver import Courier
from homeport.alerts.incidents import KINDS, Incident, Settings, advance
from homeport.alerts.observe import observe, probe, watched
from homeport.config.alerts import Alerts
from homeport.config.deployment import Deployment
from homeport.config.types import duration_ms
from homeport.errors import HomeportError
from homeport.layout import DeploymentLayout
from homeport.logs import log_to_file
from homeport.policy.backoff import NOT_DELIVERING_AFTER_S
from homeport.store.database import open_store
from homeport.supervision.loopback import loopback_config
from homeport.supervision.serving import serve_until
from homeport.synapse.api import SynapseApiError
from homeport.trust import client_ssl_context

logger = logging.getLogger("homeport.alerts")

CHECK_S = 15.0
READ_TIMEOUT_S = 20.0  # a homeserver that hangs concludes nothing this round, no more
PRUNE_EVERY_S = 3600.0


def settings_of(alerts: Alerts) -> Settings:
    return Settings(
        grace_ms=duration_ms(alerts.grace),
        settle_ms=duration_ms(alerts.settle),
        not_delivering_ms=int(NOT_DELIVERING_AFTER_S * 1000),
    )


@dataclass
class HealthState:
    """What /health shows."""

    last_round_ts: int | None = None
    answered: dict[str, bool] = field(default_factory=dict)  # homeserver -> its Synapse answered
    open_incidents: int = 0
    notices_waiting: int = 0
    last_error: str = ""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.incident = Gauge(
            "homeport_federation_incident_seconds",
            "How long each open incident of a watched destination has lasted",
            ["homeserver", "destination", "kind"],
            registry=self.registry,
        )
        self.open = Gauge(
            "homeport_federation_open_incidents",
            "Open incidents of every destination, watched or not",
            ["homeserver", "kind"],
            registry=self.registry,
        )
        self.answering = Gauge(
            "homeport_homeserver_answering",
            "1 when the homeserver answered Homeport's last check, 0 when it did not",
            ["homeserver"],
            registry=self.registry,
        )
        self.last_round = Gauge(
            "homeport_alerts_last_round_timestamp_seconds",
            "When the alerts service last checked every homeserver",
            registry=self.registry,
        )
        self._shown: dict[str, set[tuple[str, str]]] = {}  # labels set, by homeserver
        self.notices = Counter(
            "homeport_alerts_notices",
            "Notices delivered, by where and how it went",
            ["channel", "result"],
            registry=self.registry,
        )

    def show(
        self, name: str, incidents: list[Incident], watching: frozenset[str], now: int
    ) -> None:
        """Homeserver `name`'s open incidents as they are after its check."""
        for kind in KINDS:
            self.open.labels(name, kind).set(sum(1 for i in incidents if i.kind == kind))
        for shown in self._shown.pop(name, set()):
            self.incident.remove(name, *shown)
        current = {
            (i.destination, i.kind): max(0.0, (now - i.started_ms) / 1000)
            for i in incidents
            if i.destination in watching and i.good_since_ms is None
        }
        for (destination, kind), age in current.items():
            self.incident.labels(name, destination, kind).set(age)
        self._shown[name] = set(current)


def create_app(state: HealthState, metrics: Metrics) -> Starlette:
    async def health(_request: Request) -> Response:
        fresh = state.last_round_ts is not None and (
            time.time() * 1000 - state.last_round_ts < 4 * CHECK_S * 1000
        )
        return JSONResponse(asdict(state), status_code=200 if fresh else 503)

    async def prometheus(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/health", health), Route("/metrics", prometheus)])


class Checker:
    """The rounds: one per CHECK_S, each homeserver concurrently."""

    def __init__(
        self,
        deployment: Deployment,
        engine: Engine,
        context: ssl.SSLContext,
        accounts: ServiceAccounts,
        courier: Courier,
    ) -> None:
        assert deployment.alerts is not None
        self.deployment = deployment
        self.alerts = deployment.alerts
        self.settings = settings_of(deployment.alerts)
        self.engine = engine
        self.context = context
        self.accounts = accounts
        self.courier = courier
        self.state = HealthState()
        self.metrics = Metrics()
        self._pruned_at = 0.0

    async def round(self) -> None:
        names = list(self.deployment.homeservers)
        answers = await asyncio.gather(*(probe(self.deployment, n, self.context) for n in names))
        silent = {n: error for n, error in zip(names, answers, strict=True) if error is not None}
        now = int(time.time() * 1000)
        await asyncio.gather(*(self._check(name, silent, now) for name in names))
        sent = await self.courier.send_due(int(time.time() * 1000))
        for channel, result in sent:
            self.metrics.notices.labels(channel, result).inc()
        self.state.notices_waiting = await asyncio.to_thread(self.courier.waiting)
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
            retention = duration_ms(self.alerts.retention)
            gone = await asyncio.to_thread(store.prune, self.engine, now, retention)
            self._pruned_at = time.monotonic()
            if gone:
                logger.info("incidents past retention forgotten", extra={"count": gone})
        self.state.last_round_ts = now
        self.metrics.last_round.set(now / 1000)

    async def _check(self, name: str, silent: dict[str, str], now: int) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                admin = await self.accounts.get(name)
                observation = await observe(self.deployment, name, admin, silent, now)
        except (SynapseApiError, httpx.HTTPError, OSError, TimeoutError) as error:
            self.state.answered[name] = False
            self.metrics.answering.labels(name).set(0)
            if name not in silent:
                logger.warning(
                    "homeserver did not say what waits", extra={"homeserver": name,
                    "error": repr(error)}
                )  # fmt: skip
            return
        self.state.answered[name] = True
        self.metrics.answering.labels(name).set(1)
        watching = watched(self.deployment, name)
        opened = await asyncio.to_thread(store.open_incidents, self.engine, name)
        step = advance(opened, observation, self.settings, watching)
        await asyncio.to_thread(
            store.record_step,
            self.engine,
            name,
            step,
            observation.waiting,
            now,
            self.alerts.admin_room,
            self.alerts.webhook is not None,
        )
        for notice in step.notices:
            logger.info(
                "federation " + ("alert" if notice.status == "firing" else "recovery"),
                extra={
                    "homeserver": name,
                    "destinations": [i.destination for i in notice.incidents],
                    "kinds": sorted({i.kind for i in notice.incidents}),
                },
            )
        still_open = {i.key: i for i in opened}
        still_open.update({i.key: i for i in step.changed})
        current = [i for i in still_open.values() if i.open]
        self.metrics.show(name, current, watching, now)
        self.state.open_incidents = len(current)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.round()
                self.state.last_error = ""
            except (HomeportError, SQLAlchemyError) as error:
                self.state.last_error = str(error)
                logger.warning("the round failed", extra={"error": str(error)})
            wait = max(0.0, CHECK_S - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)


async def main(
    deployment: Deployment, listening: socket.socket | None, stop: asyncio.Event
) -> None:
    """Check and tell until `stop` is set."""
    assert deployment.alerts is not None
    layout = DeploymentLayout(deployment.data_dir)
    log_to_file(layout.alerts_log)
    engine = open_store(deployment)
    context = client_ssl_context(deployment)
    accounts = ServiceAccounts(deployment, context)
    courier = Courier(deployment, engine, accounts)
    checker = Checker(deployment, engine, context, accounts, courier)
    app = create_app(checker.state, checker.metrics)
    config = loopback_config(app, deployment.alerts.port, 16)
    rounds = asyncio.create_task(checker.run(stop))
    logger.info("alerts service checking", extra={"homeservers": list(deployment.homeservers)})
    try:
        await serve_until(config, listening, stop)
    finally:
        rounds.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rounds
        await courier.aclose()
        await accounts.aclose()
        engine.dispose()
