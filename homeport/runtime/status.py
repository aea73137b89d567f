"""What `homeport status` reports: gathered from the run state and live probes.

The JSON shape is a documented, stable interface (docs/status-json.md):
keys are only ever added.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TypedDict

import httpx

from homeport.capabilities import CAPABILITIES
from homeport.capability import StatusContext
from homeport.config.deployment import Deployment
from homeport.homeserver.process import probe
from homeport.layout import DeploymentLayout
from homeport.policy.backoff import NOT_DELIVERING_AFTER_S
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
    # Then each capability's keys (`Capability.homeserver_status_keys`), such as
    # `audit` and `directory_login` (docs/status-json.md).


class ServiceStatus(TypedDict):
    kind: str
    state: str
    running: bool
    held: bool
    pid: int | None
    restarts: int
    url: str | None


class Status(TypedDict):
    running: bool
    supervisor_pid: int | None
    homeservers: dict[str, HomeserverStatus]
    services: dict[str, ServiceStatus]
    ca_cert: str
    # Then each capability's keys (`Capability.status_keys`), such as `admin_url`
    # and `conference` (docs/status-json.md).


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
    context = StatusContext(layout=layout, ssl_context=ssl_context, services=services)

    async def one(name: str) -> HomeserverStatus:
        hs = deployment.homeservers[name]
        service = services.get(name) or _service_status(None, name in held, False)
        version = None
        if service["running"] and ssl_context is not None:
            version = await probe(hs, ssl_context)
        federation = None
        if version is not None and ssl_context is not None:
            federation = await _federation_summary(deployment, name, ssl_context)
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
        )

    async def entry(name: str) -> HomeserverStatus:
        core = await one(name)
        sections = await asyncio.gather(
            *(
                capability.homeserver_status(deployment, name, context, core["ready"])
                for capability in CAPABILITIES
            )
        )
        for section in sections:
            core.update(section)  # type: ignore[typeddict-item]
        return core

    names = list(deployment.homeservers)
    results = await asyncio.gather(*(entry(name) for name in names))
    status = Status(
        running=supervisor_pid is not None,
        supervisor_pid=supervisor_pid if supervisor_pid and supervisor_pid > 0 else None,
        homeservers=dict(zip(names, results, strict=True)),
        services=services,
        ca_cert=str(layout.ca_certificate),
    )
    for capability in CAPABILITIES:
        status.update(capability.status(deployment, layout))  # type: ignore[typeddict-item]
    return status
