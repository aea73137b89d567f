"""The admin website as a capability: one HTTPS service, after the homeservers."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from homeport import pki
from homeport.capability import (
    EVERY_ADDRESS,
    Capability,
    ClusterRole,
    ClusterWeb,
    PortClaim,
    Preparing,
    ServiceContext,
)
from homeport.config.deployment import Deployment
from homeport.config.types import ADMIN_SERVICE
from homeport.files import ensure_dir
from homeport.layout import DeploymentLayout
from homeport.supervision.host import https_hosted
from homeport.supervision.host_process import HostedMain
from homeport.supervision.service import Service


class AdminWebsite(Capability):
    name = "admin"
    commands = (("admin", "homeport.cli.admin:admin_command"),)
    status_keys = ("admin_url",)

    def services(self, deployment: Deployment, context: ServiceContext) -> list[Service]:
        admin = deployment.admin
        if admin is None:
            return []
        return [
            https_hosted(
                context.host,
                ADMIN_SERVICE,
                "admin website",
                address=admin.address,
                port=admin.port,
                tls_host=admin.host,
                port_key="admin.port",
                ssl_context=context.ssl_context,
                after=tuple(deployment.homeservers),  # the website is no use before them
            )
        ]

    def hosted_main(
        self, deployment: Deployment, service: str, registered: Sequence[Capability]
    ) -> HostedMain | None:
        """The website, with the tabs of every capability that has one."""
        if service != ADMIN_SERVICE:
            return None
        from homeport.admin.server import run

        pages = [c.website for c in registered if c.website is not None]
        return functools.partial(run, deployment, pages)

    def controllable(self, deployment: Deployment, layout: DeploymentLayout) -> dict[str, Path]:
        return {} if deployment.admin is None else {ADMIN_SERVICE: layout.host_console}

    def ports(self, deployment: Deployment) -> list[PortClaim]:
        admin = deployment.admin
        return [] if admin is None else [PortClaim(("admin", "port"), admin.address, admin.port)]

    def in_cluster(self, cluster: Deployment) -> Deployment:
        """It listens on every address of its pod (the Ingress reaches it)."""
        if cluster.admin is None:
            return cluster
        listening = cluster.admin.model_copy(update={"address": EVERY_ADDRESS})
        return cluster.model_copy(update={"admin": listening})

    def cluster_roles(self, deployment: Deployment, layout: DeploymentLayout) -> list[ClusterRole]:
        """In the services' namespace: its TLS files; every homeserver's admin API."""
        if deployment.admin is None:
            return []
        admin = deployment.admin
        files = (layout.admin_tls_certificate, layout.admin_tls_key)
        web = ClusterWeb(
            command=("admin", "-c", "{config}", "--prepared"),
            description="The admin website: administrators' addresses only",
            address=admin.address,
            port=admin.port,
            host=admin.host,
            certificate=layout.admin_tls_certificate,
            key=layout.admin_tls_key,
        )
        return [ClusterRole(ADMIN_SERVICE, None, files, tuple(deployment.homeservers), web=web)]

    def certificate_hosts(self, deployment: Deployment) -> list[str]:
        return [] if deployment.admin is None else [deployment.admin.host]

    def materialize(self, deployment: Deployment, preparing: Preparing) -> None:
        layout, ca, only = preparing.layout, preparing.ca, preparing.only
        if deployment.admin is None or only is not None:
            return
        ensure_dir(layout.admin_tls_certificate.parent)
        pki.ensure_leaf(
            ca, deployment.admin.host, layout.admin_tls_certificate, layout.admin_tls_key
        )

    def status(self, deployment: Deployment, layout: DeploymentLayout) -> dict[str, Any]:
        return {"admin_url": deployment.admin_url}

    def status_lines(self, status: Mapping[str, Any]) -> list[str]:
        return [f"Admin website: {status['admin_url']}"] if status.get("admin_url") else []


CAPABILITY = AdminWebsite()
