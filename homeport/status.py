"""What `homeport status` reports: gathered from the run state and live probes.

The JSON shape is a documented, stable interface (docs/status-json.md):
keys are only ever added.
"""

from __future__ import annotations

import asyncio
from typing import TypedDict

import httpx

from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.runstate import RunLock, read_held, read_state
from homeport.synapse import process as synapse_process
from homeport.synapse.api import SynapseApiError, SynapseClient
from homeport.synapse.service_account import admin_token
from homeport.trust import client_ssl_context


class FederationSummary(TypedDict):
    destinations: int
    failing: int


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


class Status(TypedDict):
    running: bool
    supervisor_pid: int | None
    homeservers: dict[str, HomeserverStatus]
    ca_cert: str
    admin_url: str | None


async def federation_summary(client: SynapseClient) -> FederationSummary:
    """Total from one small page; failing by reading destinations ordered by
    retry_interval, descending, until the first healthy one. Synapse sets
    retry_interval > 0 only while backing off, so this reads only the failing
    ones, however many tens of thousands of destinations there are."""
    total = int((await client.federation_destinations(limit=1))["total"])
    failing = 0
    start = 0
    while True:
        page = await client.federation_destinations(
            start=start, limit=500, order_by="retry_interval", direction="b"
        )
        rows = page["destinations"]
        healthy_seen = False
        for row in rows:
            if (row.get("retry_interval") or 0) > 0:
                failing += 1
            else:
                healthy_seen = True
                break
        if healthy_seen or "next_token" not in page:
            return FederationSummary(destinations=total, failing=failing)
        start = int(page["next_token"])


async def _federation_summary(
    deployment: Deployment, name: str, layout: DeploymentLayout
) -> FederationSummary | None:
    hs = deployment.homeservers[name]
    try:
        async with SynapseClient(hs.base_url, client_ssl_context(deployment)) as client:
            await admin_token(client, layout.homeserver(name))
            return await federation_summary(client)
    except (httpx.HTTPError, SynapseApiError, OSError):
        return None


async def reset_backoff_toward(deployment: Deployment, name: str) -> list[str]:
    """Let the other homeservers retry `name` at once (after its restart), not after backoff.

    Returns the homeservers that had been backing off from it.
    """
    layout = DeploymentLayout(deployment.data_dir)
    server_name = deployment.homeservers[name].server_name

    async def reset(other: str) -> bool:
        hs = deployment.homeservers[other]
        try:
            async with SynapseClient(hs.base_url, client_ssl_context(deployment)) as client:
                await admin_token(client, layout.homeserver(other))
                return await client.reset_connection(server_name)
        except (httpx.HTTPError, SynapseApiError, OSError):
            return False  # not running: nothing to reset

    others = [other for other in deployment.homeservers if other != name]
    results = await asyncio.gather(*(reset(other) for other in others))
    return [other for other, was_reset in zip(others, results, strict=True) if was_reset]


async def gather_status(deployment: Deployment) -> Status:
    layout = DeploymentLayout(deployment.data_dir)
    supervisor_pid = RunLock(layout).holder() if layout.data_dir.exists() else None
    state = read_state(layout) if supervisor_pid else None
    held = read_held(layout)
    ssl_context = client_ssl_context(deployment) if layout.ca_certificate.exists() else None

    async def one(name: str) -> HomeserverStatus:
        hs = deployment.homeservers[name]
        entry = state["homeservers"].get(name) if state else None
        pid = entry["pid"] if entry else None
        running = bool(pid and synapse_process.pid_alive(pid))
        version = None
        if running and ssl_context is not None:
            version = await synapse_process.probe(hs.base_url, ssl_context)
        federation = None
        if version is not None:
            federation = await _federation_summary(deployment, name, layout)
        return HomeserverStatus(
            server_name=hs.server_name,
            base_url=hs.base_url,
            running=running,
            ready=version is not None,
            pid=pid if running else None,
            state=entry["state"] if entry and supervisor_pid else "stopped",
            held=name in held,
            restarts=entry["restarts"] if entry else 0,
            synapse_version=version,
            federation=federation,
            log_file=str(layout.homeserver(name).log_file),
        )

    names = list(deployment.homeservers)
    results = await asyncio.gather(*(one(name) for name in names))
    return Status(
        running=supervisor_pid is not None,
        supervisor_pid=supervisor_pid if supervisor_pid and supervisor_pid > 0 else None,
        homeservers=dict(zip(names, results, strict=True)),
        ca_cert=str(layout.ca_certificate),
        admin_url=deployment.admin.url if deployment.admin else None,
    )
