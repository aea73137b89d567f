"""Group sync as a capability: one watching service; directory login on its homeserver."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from rich.markup import escape

from homeport.capability import (
    Capability,
    ClusterProcess,
    ClusterRole,
    FileProblem,
    PodFile,
    PortClaim,
    ServiceContext,
    StatusContext,
    SynapsePieces,
    WebsitePages,
)
from homeport.config.deployment import Deployment
from homeport.config.types import GROUPSYNC_SERVICE
from homeport.layout import DeploymentLayout
from homeport.supervision.host import HostedService
from homeport.supervision.host_process import HostedMain
from homeport.supervision.loopback import ADDRESS, bind_loopback, loopback_health
from homeport.supervision.service import Service
from homeport.synapse_module.config import DirectoryLoginConfig
from homeport.synapse_module.contract import DIRECTORY_LOGIN_MODULE


class DirectoryLoginStatus(TypedDict):
    state: str  # ok, unreachable, unknown (no login has asked the directory yet)
    last_ok_ts: int | None
    down_since_ts: int | None
    error: str


def _login_served_by(deployment: Deployment, name: str) -> bool:
    sync = deployment.group_sync
    return sync is not None and sync.login and sync.homeserver == name


async def _directory_login(
    deployment: Deployment, name: str, ssl_context: ssl.SSLContext
) -> DirectoryLoginStatus | None:
    import httpx

    from homeport.synapse.api import SynapseApiError
    from homeport.synapse.service_account import service_client

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


def _configured(deployment: Deployment) -> bool:
    return deployment.group_sync is not None


class GroupSyncCapability(Capability):
    name = "groupsync"
    commands = (("groupsync", "homeport.cli.groupsync:groupsync"),)
    website = WebsitePages(
        "groupsync", "Group sync", "homeport.groupsync.website", shown=_configured
    )
    homeserver_status_keys = ("directory_login",)

    def services(self, deployment: Deployment, context: ServiceContext) -> list[Service]:
        sync = deployment.group_sync
        if sync is None:
            return []
        from homeport.groupsync.service import RESTART

        async def serving() -> str | None:
            """Ready once it serves; whether the directory answers is its /health's to say."""
            return None if await loopback_health(sync.port) is None else ""

        return [
            HostedService(
                context.host,
                GROUPSYNC_SERVICE,
                "group sync",
                f"http://{ADDRESS}:{sync.port}",
                lambda: bind_loopback(sync.port, "group sync", "group_sync.port"),
                serving,
                logs=(context.layout.groupsync_log,),
                after=(sync.homeserver,),  # its spaces live there
                restart=RESTART,
            )
        ]

    def hosted_main(
        self, deployment: Deployment, service: str, registered: Sequence[Capability]
    ) -> HostedMain | None:
        if service != GROUPSYNC_SERVICE:
            return None
        from homeport.groupsync.service_main import main

        return functools.partial(main, deployment)

    def controllable(self, deployment: Deployment, layout: DeploymentLayout) -> dict[str, Path]:
        return {} if deployment.group_sync is None else {GROUPSYNC_SERVICE: layout.groupsync_log}

    def ports(self, deployment: Deployment) -> list[PortClaim]:
        sync = deployment.group_sync
        return [] if sync is None else [PortClaim(("group_sync", "port"), "127.0.0.1", sync.port)]

    def file_problems(self, deployment: Deployment) -> list[FileProblem]:
        sync = deployment.group_sync
        if sync is None:
            return []
        problems = []
        ldap = ("group_sync", "ldap")
        secret = sync.ldap.bind_password_file
        if secret is not None and not secret.is_file():
            problems.append(
                FileProblem(
                    (*ldap, "bind_password_file"),
                    f"no such file: {secret}",
                    "write the directory's bind password into it (one line, chmod 600)",
                )
            )
        elif secret is not None and secret.stat().st_mode & 0o077:
            problems.append(
                FileProblem(
                    (*ldap, "bind_password_file"),
                    f"{secret} can be read by other users of this machine",
                    f"chmod 600 {secret}",
                )
            )
        if sync.ldap.ca_file is not None and not sync.ldap.ca_file.is_file():
            problems.append(FileProblem((*ldap, "ca_file"), f"no such file: {sync.ldap.ca_file}"))
        return problems

    def cluster_roles(self, deployment: Deployment, layout: DeploymentLayout) -> list[ClusterRole]:
        """In its homeserver's namespace: the directory's CA and bind password."""
        sync = deployment.group_sync
        if sync is None:
            return []
        named = (sync.ldap.ca_file, sync.ldap.bind_password_file)
        files = tuple(path for path in named if path is not None)
        watch = ClusterProcess(
            container="group-sync",
            command=("groupsync", "watch", "-c", "{config}"),
            health_port=sync.port,
            cpu_request="100m",
            memory_request="256Mi",
            memory_limit="1Gi",
        )
        return [
            ClusterRole(
                GROUPSYNC_SERVICE, sync.homeserver, files, (sync.homeserver,), process=watch
            )
        ]

    def synapse_pod_files(
        self, deployment: Deployment, name: str, layout: DeploymentLayout
    ) -> list[PodFile]:
        """Directory login's CA and bind password, on the homeserver that has it only."""
        sync = deployment.group_sync
        if sync is None or not _login_served_by(deployment, name):
            return []
        named = (sync.ldap.ca_file, sync.ldap.bind_password_file)
        return [PodFile(path) for path in named if path is not None]

    def synapse(self, deployment: Deployment, name: str, layout: DeploymentLayout) -> SynapsePieces:
        """Directory login (`homeport.synapse_module.directory_login`), from group sync's own
        `ldap:` settings: the people group sync provisions log in with their directory
        password, never as one of Homeport's own accounts, with bounded waits."""
        sync = deployment.group_sync
        if sync is None or not _login_served_by(deployment, name):
            return SynapsePieces()
        config = DirectoryLoginConfig(
            ldap=sync.ldap, bot_localparts=tuple(deployment.homeservers[name].bot_localparts)
        )
        # Unset LDAP settings stay unset: the module takes the same defaults.
        written = config.model_dump(mode="json", exclude_unset=True)
        return SynapsePieces(modules=[{"module": DIRECTORY_LOGIN_MODULE, "config": written}])

    async def homeserver_status(
        self, deployment: Deployment, name: str, context: StatusContext, ready: bool
    ) -> dict[str, Any]:
        if not ready or context.ssl_context is None or not _login_served_by(deployment, name):
            return {"directory_login": None}
        return {"directory_login": await _directory_login(deployment, name, context.ssl_context)}

    def status_lines(self, status: Mapping[str, Any]) -> list[str]:
        lines = []
        for hs in status["homeservers"].values():
            login = hs.get("directory_login")
            if login is not None and login["state"] == "unreachable":
                lines.append(
                    f"[red]Directory login on {hs['server_name']}: the directory does not answer"
                    f"[/] ({escape(login['error'])}); local accounts still log in"
                )
        return lines


CAPABILITY = GroupSyncCapability()
