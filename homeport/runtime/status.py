"""What `homeport status` reports: gathered from the run state and live probes.

The JSON shape is a documented, stable interface (docs/status-json.md):
keys are only ever added.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import TypedDict

import httpx
from sqlalchemy.exc import SQLAlchemyError

from homeport.audit.service import bot_health
from homeport.audit.store import count_audited
from homeport.conference.secrets import jitsi_secret_file, livekit_secret_file
from homeport.config.deployment import Deployment
from homeport.config.types import AUDIT_SERVICE_PREFIX
from homeport.errors import HomeportError
from homeport.homeserver.process import probe
from homeport.layout import DeploymentLayout
from homeport.policy.backoff import NOT_DELIVERING_AFTER_S
from homeport.store.database import open_store
from homeport.supervision.processes import pid_alive
from homeport.supervision.state import RunLock, ServiceState, read_held, read_state
from homeport.synapse.admin_api import DestinationQuery
from homeport.synapse.api import SynapseApiError
from homeport.synapse.service_account import service_client
from homeport.trust import client_ssl_context

UNDELIVERED_SHOWN = 20  # the longest waiting servers `status` lists


class UndeliveredStatus(TypedDict):
    destination: str
    rooms: int
    since_ms: int
    waiting_seconds: float


class FederationSummary(TypedDict):
    destinations: int
    failing: int
    not_delivering: int
    undelivered: list[UndeliveredStatus]


class AuditStatus(TypedDict):
    user_id: str
    service: str  # its name in `services`, for `homeport stop/start`
    state: str
    running: bool
    registered: bool  # it answered and has registered with Synapse
    audited_rooms: int | None  # None when the store cannot be read


class DirectoryLoginStatus(TypedDict):
    state: str  # ok, unreachable, unknown (no login has asked the directory yet)
    last_ok_ts: int | None
    down_since_ts: int | None
    error: str


class HomeserverStatus(TypedDict):
    server_name: str
    base_url: str
    running: bool
    ready: bool
    pid: int | None
    state: str
    held: bool
    restarts: int
    synapse_version: str | None
    federation: FederationSummary | None
    log_file: str
    audit: AuditStatus | None
    directory_login: DirectoryLoginStatus | None  # on the homeserver group sync serves


class ServiceStatus(TypedDict):
    kind: str
    state: str
    running: bool
    held: bool
    pid: int | None
    restarts: int
    url: str | None


class ConferenceStatus(TypedDict):
    url: str
    auth_token_file: str  # the bearer token Prosody presents (`uvs_auth_token`)
    jitsi_app_secret_file: str | None
    livekit_secret_file: str | None
    jitsi_well_known_file: str | None  # `/.well-known/element/jitsi` for the Jitsi domain


class Status(TypedDict):
    running: bool
    supervisor_pid: int | None
    homeservers: dict[str, HomeserverStatus]
    services: dict[str, ServiceStatus]
    ca_cert: str
    admin_url: str | None
    conference: ConferenceStatus | None


def _conference_status(deployment: Deployment, layout: DeploymentLayout) -> ConferenceStatus | None:
    conference = deployment.conference
    if conference is None:
        return None

    def named(path: Path | None) -> str | None:
        return None if path is None else str(path)

    return ConferenceStatus(
        url=deployment.conference_url or conference.url,
        auth_token_file=str(layout.conference_auth_token),
        jitsi_app_secret_file=named(jitsi_secret_file(conference, layout)),
        livekit_secret_file=named(livekit_secret_file(conference, layout)),
        jitsi_well_known_file=named(
            layout.conference_jitsi_well_known if conference.jitsi else None
        ),
    )


async def _directory_login(
    deployment: Deployment, name: str, ssl_context: ssl.SSLContext
) -> DirectoryLoginStatus | None:
    sync = deployment.group_sync
    if sync is None or not sync.login or sync.homeserver != name:
        return None
    try:
        async with service_client(deployment, name, ssl_context) as admin:
            body = await admin.directory_login()
    except (httpx.HTTPError, SynapseApiError, OSError):
        return None
    if body is None:
        return None
    return DirectoryLoginStatus(
        state=str(body.get("state", "unknown")),
        last_ok_ts=body.get("last_ok_ts"),
        down_since_ts=body.get("down_since_ts"),
        error=str(body.get("error", "")),
    )


async def _federation_summary(
    deployment: Deployment, name: str, ssl_context: ssl.SSLContext
) -> FederationSummary | None:
    try:
        async with service_client(deployment, name, ssl_context) as admin:
            total = (await admin.destinations(DestinationQuery(limit=1))).total
            failing = await admin.count_backing_off()
            waiting, _ = await admin.undelivered()
    except (httpx.HTTPError, SynapseApiError, OSError):
        return None
    now_ms = int(time.time() * 1000)
    return FederationSummary(
        destinations=total,
        failing=failing,
        not_delivering=sum(1 for u in waiting if u.age_s(now_ms) >= NOT_DELIVERING_AFTER_S),
        undelivered=[
            UndeliveredStatus(
                destination=u.destination,
                rooms=u.rooms,
                since_ms=u.since_ms,
                waiting_seconds=round(u.age_s(now_ms), 1),
            )
            for u in waiting[:UNDELIVERED_SHOWN]
        ],
    )


def _service_status(entry: ServiceState | None, held: bool, running_up: bool) -> ServiceStatus:
    pid = entry["pid"] if entry else None
    alive = bool(pid and pid_alive(pid))
    return ServiceStatus(
        kind=entry["kind"] if entry else "",
        state=entry["state"] if entry and running_up else "stopped",
        running=alive,
        held=held,
        pid=pid if alive else None,
        restarts=entry["restarts"] if entry else 0,
        url=entry["url"] if entry else None,
    )


def _audited_counts(deployment: Deployment) -> dict[str, int]:
    """Rooms each audit bot records now, from the store (empty when it cannot be read)."""
    if not any(hs.audit_bot for hs in deployment.homeservers.values()):
        return {}
    try:
        engine = open_store(deployment)
    except HomeportError:
        return {}
    try:
        return {
            name: count_audited(engine, name)
            for name, hs in deployment.homeservers.items()
            if hs.audit_bot is not None
        }
    except SQLAlchemyError:
        return {}
    finally:
        engine.dispose()


async def _audit_status(
    deployment: Deployment, name: str, services: dict[str, ServiceStatus], counts: dict[str, int]
) -> AuditStatus | None:
    hs = deployment.homeservers[name]
    if hs.audit_bot is None or hs.audit_user_id is None:
        return None
    service_name = AUDIT_SERVICE_PREFIX + name
    service = services.get(service_name) or _service_status(None, False, False)
    health = await bot_health(hs.audit_bot.port) if service["running"] else None
    return AuditStatus(
        user_id=hs.audit_user_id,
        service=service_name,
        state=service["state"],
        running=service["running"],
        registered=bool(health and health.get("status") == "ok"),
        audited_rooms=counts.get(name),
    )


async def gather_status(deployment: Deployment) -> Status:
    layout = DeploymentLayout(deployment.data_dir)
    supervisor_pid = RunLock(layout).holder() if layout.data_dir.exists() else None
    state = read_state(layout) if supervisor_pid else None
    entries = state["services"] if state else {}
    held = read_held(layout)
    services = {
        name: _service_status(entry, name in held, supervisor_pid is not None)
        for name, entry in entries.items()
    }
    ssl_context = client_ssl_context(deployment) if layout.ca_certificate.exists() else None
    counts = await asyncio.to_thread(_audited_counts, deployment)

    async def one(name: str) -> HomeserverStatus:
        hs = deployment.homeservers[name]
        service = services.get(name) or _service_status(None, name in held, False)
        version = None
        if service["running"] and ssl_context is not None:
            version = await probe(hs, ssl_context)
        federation = directory = None
        if version is not None and ssl_context is not None:
            federation, directory = await asyncio.gather(
                _federation_summary(deployment, name, ssl_context),
                _directory_login(deployment, name, ssl_context),
            )
        return HomeserverStatus(
            server_name=hs.server_name,
            base_url=hs.base_url,
            running=service["running"],
            ready=version is not None,
            pid=service["pid"],
            state=service["state"],
            held=service["held"],
            restarts=service["restarts"],
            synapse_version=version,
            federation=federation,
            log_file=str(layout.homeserver(name).log_file),
            audit=await _audit_status(deployment, name, services, counts),
            directory_login=directory,
        )

    names = list(deployment.homeservers)
    results = await asyncio.gather(*(one(name) for name in names))
    return Status(
        running=supervisor_pid is not None,
        supervisor_pid=supervisor_pid if supervisor_pid and supervisor_pid > 0 else None,
        homeservers=dict(zip(names, results, strict=True)),
        services=services,
        ca_cert=str(layout.ca_certificate),
        admin_url=deployment.admin_url,
        conference=_conference_status(deployment, layout),
    )
