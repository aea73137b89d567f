"""Federation alerts as a capability: one checking service, with /health and /metrics."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape

from homeport.capability import (
    Capability,
    ClusterProcess,
    ClusterRole,
    FileProblem,
    PortClaim,
    ServiceContext,
    SynapsePieces,
)
from homeport.config.deployment import Deployment
from homeport.config.types import ALERTS_SERVICE
from homeport.layout import DeploymentLayout
from homeport.supervision.host import HostedService
from homeport.supervision.host_process import HostedMain
from homeport.supervision.loopback import ADDRESS, bind_loopback, loopback_health
from homeport.supervision.service import RestartPolicy, Service

# A round cut short is made again by the next: come back soon, then back off.
RESTART = RestartPolicy(backoff=(1.0, 2.0, 5.0, 10.0, 30.0, 60.0))


def metrics_domains(deployment: Deployment, name: str) -> list[str]:
    """The servers Synapse keeps per-destination federation metrics for (its
    `federation_metrics_domains`): every other homeserver of the file, and the
    `important` servers of this one."""
    own = deployment.homeservers[name].server_name
    siblings = [hs.server_name for hs in deployment.homeservers.values() if hs.server_name != own]
    important = deployment.alerts.important.get(name, []) if deployment.alerts else []
    return list(dict.fromkeys([*siblings, *important]))


def _open_incidents(deployment: Deployment) -> list[dict[str, Any]] | None:
    """Every open federation incident, from the store; None when it cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from homeport.alerts.store import open_in
    from homeport.clock import iso
    from homeport.errors import HomeportError
    from homeport.store.database import open_store

    try:
        engine = open_store(deployment)
    except HomeportError:
        return None
    try:
        found = open_in(engine, list(deployment.homeservers))
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return [
        {
            "homeserver": i.homeserver,
            "destination": i.destination,
            "kind": i.kind,
            "since": iso(i.started_ms),
            "told": i.alerted,
        }
        for i in found
    ]


class AlertsCapability(Capability):
    name = "alerts"
    commands = (("alerts", "homeport.cli.alerts:alerts"),)
    status_keys = ("alerts",)

    def services(self, deployment: Deployment, context: ServiceContext) -> list[Service]:
        alerts = deployment.alerts
        if alerts is None:
            return []

        async def serving() -> str | None:
            """Ready once it serves; how its rounds go is its /health's to say."""
            return None if await loopback_health(alerts.port) is None else ""

        return [
            HostedService(
                context.host,
                ALERTS_SERVICE,
                "federation alerts",
                f"http://{ADDRESS}:{alerts.port}",
                lambda: bind_loopback(alerts.port, "the alerts service", "alerts.port"),
                serving,
                logs=(context.layout.alerts_log,),
                after=tuple(deployment.homeservers),
                restart=RESTART,
            )
        ]

    def hosted_main(
        self, deployment: Deployment, service: str, registered: Sequence[Capability]
    ) -> HostedMain | None:
        if service != ALERTS_SERVICE:
            return None
        from homeport.alerts.service import main

        return functools.partial(main, deployment)

    def controllable(self, deployment: Deployment, layout: DeploymentLayout) -> dict[str, Path]:
        return {} if deployment.alerts is None else {ALERTS_SERVICE: layout.alerts_log}

    def ports(self, deployment: Deployment) -> list[PortClaim]:
        alerts = deployment.alerts
        return [] if alerts is None else [PortClaim(("alerts", "port"), ADDRESS, alerts.port)]

    def file_problems(self, deployment: Deployment) -> list[FileProblem]:
        webhook = deployment.alerts.webhook if deployment.alerts else None
        token = webhook.token_file if webhook else None
        if token is None:
            return []
        key = ("alerts", "webhook", "token_file")
        if not token.is_file():
            return [FileProblem(key, f"no such file: {token}", "write the bearer token into it")]
        if token.stat().st_mode & 0o077:
            return [FileProblem(key, f"{token} can be read by other users", f"chmod 600 {token}")]
        return []

    def status(self, deployment: Deployment, layout: DeploymentLayout) -> dict[str, Any]:
        alerts = deployment.alerts
        if alerts is None:
            return {"alerts": None}
        return {
            "alerts": {
                "health_url": f"http://{ADDRESS}:{alerts.port}/health",
                "open_incidents": _open_incidents(deployment),
            }
        }

    def status_lines(self, status: Mapping[str, Any]) -> list[str]:
        incidents = (status.get("alerts") or {}).get("open_incidents") or []
        return [
            f"[red]Federation incident on {i['homeserver']}: {escape(i['destination'])} "
            f"{i['kind'].replace('_', ' ')} since {i['since'][:19].replace('T', ' ')} UTC[/]"
            for i in incidents
        ]

    def synapse(self, deployment: Deployment, name: str, layout: DeploymentLayout) -> SynapsePieces:
        """`federation_metrics_domains`: Synapse's per-destination metrics for the servers
        that matter (empty by default, so Synapse keeps none)."""
        return SynapsePieces(
            settings={"federation_metrics_domains": metrics_domains(deployment, name)}
        )

    def cluster_roles(self, deployment: Deployment, layout: DeploymentLayout) -> list[ClusterRole]:
        """In the services' namespace: every homeserver's admin API (and the webhook's
        token, if any)."""
        alerts = deployment.alerts
        if alerts is None:
            return []
        token = alerts.webhook.token_file if alerts.webhook else None
        watch = ClusterProcess(
            container="alerts",
            command=("alerts", "watch", "-c", "{config}", "--prepared"),
            health_port=alerts.port,
            cpu_request="50m",
            memory_request="128Mi",
            memory_limit="512Mi",
        )
        files = (token,) if token is not None else ()
        return [
            ClusterRole(ALERTS_SERVICE, None, files, tuple(deployment.homeservers), process=watch)
        ]


CAPABILITY = AlertsCapability()
