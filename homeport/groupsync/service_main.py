"""`homeport groupsync watch`: group sync running continuously, as `up` runs it.

A full reconcile every `interval`; in between, the directory tells us of
changes (syncrepl, or a poll on modifyTimestamp) and only the spaces whose
wanted members or power changed are planned again. `/health` says how the
last directory read and reconcile went; `/metrics` is Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import asdict, dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeport.config.deployment import Deployment
from homeport.config.types import duration_ms
from homeport.directory.ldap_connection import DirectoryUnavailable
from homeport.errors import HomeportError
from homeport.groupsync.changes import DirectoryWatch
from homeport.groupsync.desired import DesiredState, changed_rooms, changed_users, desired_state
from homeport.groupsync.history import GroupSyncHistory
from homeport.groupsync.run import GroupSyncError, RunReport, read, reconcile, settings_of
from homeport.groupsync.turns import turn
from homeport.layout import DeploymentLayout
from homeport.logs import log_to_file
from homeport.store.database import open_store
from homeport.store.leases import LeaseHolder
from homeport.supervision.loopback import loopback_config
from homeport.supervision.serving import serve_until

logger = logging.getLogger("homeport.groupsync")

RETRY_AFTER_ERROR = 10.0  # seconds before trying again when the directory or Synapse failed
DEBOUNCE = 0.2  # a group edit is often several changes: plan once for all of them


@dataclass
class WatchState:
    """What /health shows and `homeport groupsync status` reads."""

    homeserver: str
    directory_ok: bool = False
    last_full_ts: int | None = None
    next_full_ts: int | None = None
    last_change_ts: int | None = None
    last_outcome: str = "starting"
    last_error: str = ""
    changes_seen: int = 0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "homeport_groupsync_runs", "Reconciles", ["trigger", "outcome"], registry=self.registry
        )
        self.actions = Counter(
            "homeport_groupsync_actions",
            "Actions applied",
            ["kind", "result"],
            registry=self.registry,
        )
        self.directory_errors = Counter(
            "homeport_groupsync_directory_errors",
            "Directory reads that failed",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "homeport_groupsync_last_success_timestamp_seconds",
            "When a reconcile last completed",
            registry=self.registry,
        )
        self.change_latency = Histogram(
            "homeport_groupsync_change_seconds",
            "From a directory change notice to its plan applied",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )


def create_app(state: WatchState, metrics: Metrics) -> Starlette:
    async def health(_request: Request) -> Response:
        return JSONResponse(asdict(state), status_code=200 if state.directory_ok else 503)

    async def prometheus(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/health", health), Route("/metrics", prometheus)])


class Watcher:
    """The loop: wait for a change or the interval, read, plan what changed, apply."""

    def __init__(self, deployment: Deployment, engine: Engine, state: WatchState) -> None:
        self.deployment = deployment
        self.sync = settings_of(deployment)
        self.engine = engine
        self.state = state
        self.metrics = Metrics()
        self.interval = duration_ms(self.sync.interval) / 1000
        self.server_name = deployment.homeservers[self.sync.homeserver].server_name
        self._changed = asyncio.Event()
        self._first_notice: float | None = None
        self._previous: DesiredState | None = None

    def notice(self, dns: frozenset[str]) -> None:
        """From the watch thread (through the loop): the directory changed."""
        if self._first_notice is None:
            self._first_notice = time.monotonic()
        self.state.changes_seen += 1
        self.state.last_change_ts = int(time.time() * 1000)
        if not dns:
            self._previous = None  # reconnected: anything may have changed
        self._changed.set()

    def _count(self, report: RunReport, trigger: str) -> None:
        self.metrics.runs.labels(trigger, report.outcome).inc()
        failed = [action for action, _error in report.failed]
        for action in failed:
            self.metrics.actions.labels(action.kind, "failed").inc()
        for action in report.plan.actions:
            held = action.kind == "kick" and report.outcome == "guarded"
            if not held and action not in failed:
                self.metrics.actions.labels(action.kind, "ok").inc()
        self.metrics.last_success.set(time.time())

    def _waiting(self, holder: LeaseHolder) -> None:
        logger.info("waiting for the group sync run in progress", extra={"holder": holder.holder})

    async def once(self, trigger: str) -> None:
        """One run in its turn: the directory is read once the turn is ours, so a run
        that waited plans from the directory as it is, not as it was."""
        homeserver = self.sync.homeserver
        service = "the group sync service"
        async with turn(self.engine, homeserver, service, wait=None, on_wait=self._waiting):
            await self._once(trigger)

    async def _once(self, trigger: str) -> None:
        try:
            directory = await read(self.sync)
        except DirectoryUnavailable as error:
            self.metrics.directory_errors.inc()
            self.state.directory_ok, self.state.last_error = False, str(error)
            self.state.last_outcome = "directory unavailable"
            logger.warning("directory unavailable; nothing removed", extra={"reason": str(error)})
            history = GroupSyncHistory(self.engine, self.sync.homeserver)
            await asyncio.to_thread(
                history.record_failed_run, trigger, "directory unavailable", str(error)
            )
            raise
        self.state.directory_ok = True
        bots = self.deployment.homeservers[self.sync.homeserver].bot_localparts
        desired = desired_state(self.sync, directory, self.server_name, bots)
        only: set[str] | None = None
        if trigger == "change" and self._previous is not None:
            users = changed_users(self._previous, desired)
            only = changed_rooms(self._previous, desired) | {
                alias for alias, room in desired.rooms.items() if users.intersection(room.members)
            }
            if not only:
                self._previous = desired
                return
        report = await reconcile(
            self.deployment, self.engine, trigger=trigger, directory=directory, only=only
        )
        self._previous = desired
        self._count(report, trigger)
        self.state.last_outcome = report.outcome
        self.state.last_error = report.detail
        logger.info(
            "reconciled",
            extra={
                "trigger": trigger,
                "outcome": report.outcome,
                "planned": len(report.plan.actions),
                "applied": report.applied,
                "failed": len(report.failed),
                "rooms": "all" if only is None else sorted(only),
            },
        )

    async def run(self) -> None:
        next_full = time.monotonic()
        while True:
            wait = max(0.0, next_full - time.monotonic())
            self.state.next_full_ts = int((time.time() + wait) * 1000)
            try:
                await asyncio.wait_for(self._changed.wait(), wait)
                trigger = "change"
                await asyncio.sleep(DEBOUNCE)
            except TimeoutError:
                trigger = "full"
            self._changed.clear()
            started = self._first_notice
            self._first_notice = None
            try:
                await self.once(trigger)
            except (DirectoryUnavailable, GroupSyncError, HomeportError, httpx.HTTPError) as error:
                if not isinstance(error, DirectoryUnavailable):
                    self.state.last_outcome, self.state.last_error = "failed", str(error)
                    logger.warning("reconcile failed", extra={"reason": str(error)})
                next_full = min(next_full, time.monotonic() + RETRY_AFTER_ERROR)
                if trigger == "full":
                    next_full = time.monotonic() + RETRY_AFTER_ERROR
                continue
            if trigger == "full":
                self.state.last_full_ts = int(time.time() * 1000)
                next_full = time.monotonic() + self.interval
            elif started is not None:
                self.metrics.change_latency.observe(time.monotonic() - started)


async def main(
    deployment: Deployment, listening: socket.socket | None, stop: asyncio.Event
) -> None:
    """Watch and reconcile until `stop` is set; a failed watch ends the service, so that
    `up` starts it again."""
    sync = settings_of(deployment)
    layout = DeploymentLayout(deployment.data_dir)
    log_to_file(layout.groupsync_log)
    engine = open_store(deployment)
    state = WatchState(sync.homeserver)
    watcher = Watcher(deployment, engine, state)
    loop = asyncio.get_running_loop()

    def on_change(dns: frozenset[str]) -> None:
        loop.call_soon_threadsafe(watcher.notice, dns)

    def on_error(reason: str) -> None:
        logger.warning("directory watch interrupted", extra={"reason": reason})

    watch = DirectoryWatch(sync.ldap, on_change, on_error)
    config = loopback_config(create_app(state, watcher.metrics), sync.port, 32)
    ending = asyncio.Event()
    failed: list[BaseException] = []

    def ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("group sync stopped", exc_info=task.exception())
            failed.append(task.exception())  # type: ignore[arg-type]
            ending.set()

    async def until_stopped() -> None:
        await stop.wait()
        ending.set()

    watch.start()
    task = asyncio.create_task(watcher.run())
    task.add_done_callback(ended)
    stopping = asyncio.create_task(until_stopped())
    logger.info("group sync watching", extra={"homeserver": sync.homeserver})
    try:
        await serve_until(config, listening, ending)
    finally:
        stopping.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(watch.stop)
        engine.dispose()
    if failed:
        raise RuntimeError("group sync stopped; `up` starts it again") from failed[0]
