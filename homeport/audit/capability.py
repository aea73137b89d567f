"""The audit bot as a capability: one bot per homeserver that names `audit:`."""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from homeport.audit.registration import BOT_ADDRESS
from homeport.capability import (
    Capability,
    ClusterProcess,
    ClusterRole,
    PodFile,
    PortClaim,
    Preparing,
    RoomsColumn,
    ServiceContext,
    StatusContext,
    SynapsePieces,
    WebsitePages,
)
from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.types import AUDIT_SERVICE_PREFIX
from homeport.files import dump_yaml, ensure_dir, read_or_create_private, write_private
from homeport.layout import AuditLayout, DeploymentLayout
from homeport.supervision.host import HostedService
from homeport.supervision.host_process import HostedMain
from homeport.supervision.loopback import bind_loopback
from homeport.supervision.service import Service
from homeport.synapse_module.config import AuditModuleConfig


def bot_service_name(homeserver: str) -> str:
    """The bot's name among the services: `homeport stop audit-internal`."""
    return AUDIT_SERVICE_PREFIX + homeserver


class AuditStatus(TypedDict):
    user_id: str
    service: str  # its name in `services`, for `homeport stop/start`
    state: str
    running: bool
    registered: bool  # it answered and has registered with Synapse
    audited_rooms: int | None  # None when the store cannot be read


def register_audit_bot(hs: Homeserver, files: AuditLayout) -> None:
    """The bot's tokens (generated once, 0600) and the registration Synapse loads."""
    from homeport.audit.registration import render_registration

    ensure_dir(files.keys_dir)
    as_token = read_or_create_private(files.as_token, secrets.token_urlsafe(32).encode())
    hs_token = read_or_create_private(files.hs_token, secrets.token_urlsafe(32).encode())
    registration = render_registration(hs, as_token.decode().strip(), hs_token.decode().strip())
    write_private(files.registration, dump_yaml(registration))


def _audited_rooms(deployment: Deployment, name: str) -> int | None:
    """Rooms the bot records now, from the store; None when it cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from homeport.audit.store import count_audited
    from homeport.errors import HomeportError
    from homeport.store.database import open_store

    try:
        engine = open_store(deployment)
    except HomeportError:
        return None
    try:
        return count_audited(engine, name)
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def _bot_service(context: ServiceContext, name: str, port: int) -> Service:
    from homeport.audit.service import RESTART, bot_health

    async def serving() -> str | None:
        """Ready once it serves: Synapse can then deliver to it, even before it registered."""
        return None if await bot_health(port) is None else ""

    return HostedService(
        context.host,
        bot_service_name(name),
        "audit bot",
        f"http://{BOT_ADDRESS}:{port}",
        lambda: bind_loopback(port, f"the audit bot of {name!r}", "audit.port"),
        serving,
        logs=(context.layout.audit(name).log_file,),
        after=(name,),  # Synapse first: it loads the bot's registration
        restart=RESTART,
    )


class Audit(Capability):
    name = "audit"
    commands = (("audit", "homeport.cli.audit:audit"),)
    website = WebsitePages(
        "audit",
        "Audit",
        "homeport.audit.website",
        rooms_column=RoomsColumn("Recorded", "recorded_rooms", "audit_rooms_cell.html"),
    )
    homeserver_status_keys = ("audit",)

    def services(self, deployment: Deployment, context: ServiceContext) -> list[Service]:
        return [
            _bot_service(context, name, hs.audit_bot.port)
            for name, hs in deployment.homeservers.items()
            if hs.audit_bot is not None
        ]

    def hosted_main(
        self, deployment: Deployment, service: str, registered: Sequence[Capability]
    ) -> HostedMain | None:
        name = service.removeprefix(AUDIT_SERVICE_PREFIX)
        if name == service or name not in deployment.homeservers:
            return None
        from homeport.audit.bot import main

        return functools.partial(main, deployment, name)

    def controllable(self, deployment: Deployment, layout: DeploymentLayout) -> dict[str, Path]:
        return {
            bot_service_name(name): layout.audit(name).log_file
            for name, hs in deployment.homeservers.items()
            if hs.audit_bot is not None
        }

    def ports(self, deployment: Deployment) -> list[PortClaim]:
        return [
            PortClaim(("homeservers", name, "audit", "port"), "127.0.0.1", hs.audit_bot.port)
            for name, hs in deployment.homeservers.items()
            if hs.audit_bot is not None
        ]

    def writable_paths(self, deployment: Deployment) -> list[Path]:
        return [
            hs.audit.export.directory
            for hs in deployment.homeservers.values()
            if hs.audit is not None and hs.audit.export is not None
        ]

    def materialize(self, deployment: Deployment, preparing: Preparing) -> None:
        for name, hs in deployment.homeservers.items():
            if hs.audit_bot is not None and preparing.only in (None, name):
                register_audit_bot(hs, preparing.layout.audit(name))

    def synapse(self, deployment: Deployment, name: str, layout: DeploymentLayout) -> SynapsePieces:
        hs = deployment.homeservers[name]
        bot, bot_user_id = hs.audit_bot, hs.audit_user_id
        if bot is None or bot_user_id is None:
            return SynapsePieces()
        rules = AuditModuleConfig(
            user_id=bot_user_id,
            displayname=bot.displayname,
            auto_join=bot.auto_join,
            include_direct_messages=bot.include_direct_messages,
        )
        return SynapsePieces(
            module_config={"audit": rules.model_dump(mode="json", exclude_none=True)},
            app_service_config_files=[str(layout.audit(name).registration)],
        )

    def in_cluster(self, cluster: Deployment) -> Deployment:
        """No continuous export in a cluster: a pod's file system is no place to keep it."""
        homeservers = {
            name: hs
            if hs.audit is None or hs.audit.export is None
            else hs.model_copy(update={"audit": hs.audit.model_copy(update={"export": None})})
            for name, hs in cluster.homeservers.items()
        }
        return cluster.model_copy(update={"homeservers": homeservers})

    def cluster_roles(self, deployment: Deployment, layout: DeploymentLayout) -> list[ClusterRole]:
        """Beside each audited homeserver's Synapse: its tokens and registration."""
        roles = []
        for name, hs in deployment.homeservers.items():
            if hs.audit_bot is not None:
                files = layout.audit(name)
                tokens = (files.as_token, files.hs_token, files.registration)
                bot = ClusterProcess(
                    container="audit-bot",
                    command=("audit", "run", "-c", "{config}", name),
                    health_port=hs.audit_bot.port,
                    cpu_request="50m",
                    memory_request="128Mi",
                    memory_limit="512Mi",
                    # Synapse delivers transactions on the pod's loopback, as on one
                    # machine; the device keys live on Synapse's volume.
                    beside_synapse=True,
                    state_subpath="audit",
                    state_dir=f"audit/{name}",
                )
                roles.append(ClusterRole(bot_service_name(name), name, tokens, process=bot))
        return roles

    def synapse_pod_files(
        self, deployment: Deployment, name: str, layout: DeploymentLayout
    ) -> list[PodFile]:
        """Its registration (it holds its tokens), where homeserver.yaml names it."""
        if deployment.homeservers[name].audit_bot is None:
            return []
        return [PodFile(layout.audit(name).registration, "audit-registration.yaml")]

    def restart_identity(self, deployment: Deployment, name: str) -> dict[str, Any]:
        # The bot is a service of `up` on a port `up` bound: turning it on or off, or
        # moving it, needs a new `up` too.
        bot = deployment.homeservers[name].audit_bot
        return {"audit bot": None if bot is None else {"port": bot.port, "user": bot.localpart}}

    async def homeserver_status(
        self, deployment: Deployment, name: str, context: StatusContext, ready: bool
    ) -> dict[str, Any]:
        hs = deployment.homeservers[name]
        if hs.audit_bot is None or hs.audit_user_id is None:
            return {"audit": None}
        from homeport.audit.service import bot_health

        service_name = bot_service_name(name)
        service: Mapping[str, Any] = context.services.get(service_name) or {
            "state": "stopped",
            "running": False,
        }
        health, rooms = await asyncio.gather(
            bot_health(hs.audit_bot.port) if service["running"] else _nothing(),
            asyncio.to_thread(_audited_rooms, deployment, name),
        )
        return {
            "audit": AuditStatus(
                user_id=hs.audit_user_id,
                service=service_name,
                state=service["state"],
                running=service["running"],
                registered=bool(health and health.get("status") == "ok"),
                audited_rooms=rooms,
            )
        }

    def status_lines(self, status: Mapping[str, Any]) -> list[str]:
        lines = []
        for hs in status["homeservers"].values():
            audit = hs.get("audit")
            if audit is None:
                continue
            rooms = audit["audited_rooms"]
            recording = "? rooms" if rooms is None else f"{rooms} room{'' if rooms == 1 else 's'}"
            state = (
                " (not running)"
                if not audit["running"]
                else ""
                if audit["registered"]
                else " (not registered with Synapse yet)"
            )
            lines.append(f"{audit['user_id']} records {recording}{state}")
        return lines


async def _nothing() -> None:
    return None


CAPABILITY = Audit()
