"""Which services a deployment runs: one registration per capability.

Each registration reads the model and returns the services it needs, in
start order; a capability that is not configured returns none. A new
capability adds its function to REGISTRATIONS.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from homeport.admin.service import AdminWebsiteService
from homeport.audit.service import AuditBotService
from homeport.conference.service import ConferenceService
from homeport.config.deployment import Deployment
from homeport.groupsync.service import GroupSyncService
from homeport.homeserver.process import SynapseService
from homeport.homeserver.worker_process import WorkerService
from homeport.layout import DeploymentLayout
from homeport.runtime.nginx_service import NginxService
from homeport.supervision.service import Service


@dataclass(frozen=True)
class Context:
    """What registrations may need besides the model."""

    config_path: Path
    layout: DeploymentLayout
    ssl_context: ssl.SSLContext  # Homeport's own client trust (verification on)


def homeservers(deployment: Deployment, context: Context) -> list[Service]:
    return [
        SynapseService(name, hs, context.layout.homeserver(name), context.ssl_context)
        for name, hs in deployment.homeservers.items()
    ]


def workers(deployment: Deployment, context: Context) -> list[Service]:
    """Each homeserver's Synapse workers, after its main process."""
    return [
        WorkerService(name, hs, spec, context.layout.homeserver(name), context.ssl_context)
        for name, hs in deployment.homeservers.items()
        for spec in hs.workers.specs()
    ]


def admin_website(deployment: Deployment, context: Context) -> list[Service]:
    if deployment.admin is None:
        return []
    return [
        AdminWebsiteService(
            deployment.admin,
            context.config_path,
            context.layout,
            context.ssl_context,
            after=tuple(deployment.homeservers),
        )
    ]


def audit_bots(deployment: Deployment, context: Context) -> list[Service]:
    return [
        AuditBotService(name, hs, context.config_path, context.layout)
        for name, hs in deployment.homeservers.items()
        if hs.audit_bot is not None
    ]


def group_sync(deployment: Deployment, context: Context) -> list[Service]:
    if deployment.group_sync is None:
        return []
    return [GroupSyncService(deployment.group_sync, context.config_path, context.layout)]


def conference(deployment: Deployment, context: Context) -> list[Service]:
    if deployment.conference is None:
        return []
    return [
        ConferenceService(
            deployment.conference,
            context.config_path,
            context.layout,
            context.ssl_context,
            after=tuple(deployment.homeservers),
        )
    ]


def proxy(deployment: Deployment, context: Context) -> list[Service]:
    """nginx in front, when `up` runs it (`proxy.managed`)."""
    if deployment.proxy is None or not deployment.proxy.managed:
        return []
    return [NginxService(deployment, context.layout)]


Registration = Callable[[Deployment, Context], list[Service]]

REGISTRATIONS: tuple[Registration, ...] = (
    homeservers,
    workers,
    audit_bots,
    group_sync,
    conference,
    admin_website,
    proxy,
)


def services(deployment: Deployment, context: Context) -> list[Service]:
    return [service for register in REGISTRATIONS for service in register(deployment, context)]
