"""The conference service as a capability: Jitsi and Element Call authentication."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from homeport import pki
from homeport.capability import (
    EVERY_ADDRESS,
    Capability,
    ClusterRole,
    ClusterWeb,
    FileProblem,
    PortClaim,
    Preparing,
    ServiceContext,
    SynapsePieces,
)
from homeport.config.deployment import Deployment
from homeport.config.lines import KeyPath
from homeport.config.types import CONFERENCE_SERVICE
from homeport.files import ensure_dir
from homeport.layout import DeploymentLayout
from homeport.supervision.host import https_hosted
from homeport.supervision.host_process import HostedMain
from homeport.supervision.service import Service


class ConferenceStatus(TypedDict):
    url: str
    auth_token_file: str  # the bearer token Prosody presents (`uvs_auth_token`)
    jitsi_app_secret_file: str | None
    livekit_secret_file: str | None
    jitsi_well_known_file: str | None  # `/.well-known/element/jitsi` for the Jitsi domain


class ConferenceCapability(Capability):
    name = "conference"
    commands = (("conference", "homeport.cli.conference:conference_command"),)
    status_keys = ("conference",)

    def services(self, deployment: Deployment, context: ServiceContext) -> list[Service]:
        conference = deployment.conference
        if conference is None:
            return []
        return [
            https_hosted(
                context.host,
                CONFERENCE_SERVICE,
                "conference service",
                address=conference.address,
                port=conference.port,
                tls_host=conference.host,
                port_key="conference.port",
                ssl_context=context.ssl_context,
                logs=(context.layout.conference_log,),
                after=tuple(deployment.homeservers),  # it vouches through them
            )
        ]

    def hosted_main(
        self, deployment: Deployment, service: str, registered: Sequence[Capability]
    ) -> HostedMain | None:
        if service != CONFERENCE_SERVICE:
            return None
        from homeport.conference.server import run

        return functools.partial(run, deployment)

    def ports(self, deployment: Deployment) -> list[PortClaim]:
        conference = deployment.conference
        if conference is None:
            return []
        return [PortClaim(("conference", "port"), conference.address, conference.port)]

    def file_problems(self, deployment: Deployment) -> list[FileProblem]:
        conference = deployment.conference
        if conference is None:
            return []
        problems = []
        own: KeyPath = ("conference",)
        if conference.tls:
            for key, file in (
                ("certificate", conference.tls.certificate),
                ("key", conference.tls.key),
            ):
                if not file.is_file():
                    problems.append(FileProblem((*own, "tls", key), f"no such file: {file}"))
            why = pki.certificate_problem(conference.tls.certificate, conference.host)
            if why:
                problems.append(
                    FileProblem(
                        (*own, "tls", "certificate"),
                        why,
                        f"use a certificate issued for {conference.host}, or set `host`",
                    )
                )
        named = (
            (("jitsi", "app_secret_file"), conference.jitsi and conference.jitsi.app_secret_file),
            (("livekit", "secret_file"), conference.livekit and conference.livekit.secret_file),
        )
        for path, secret_file in named:
            if not secret_file:
                continue
            if not secret_file.is_file():
                problems.append(
                    FileProblem(
                        (*own, *path),
                        f"no such file: {secret_file}",
                        "write the secret into it (one line, chmod 600), or leave the key out "
                        "and Homeport generates one",
                    )
                )
            elif secret_file.stat().st_mode & 0o077:
                problems.append(
                    FileProblem(
                        (*own, *path),
                        f"{secret_file} can be read by other users of this machine",
                        f"chmod 600 {secret_file}",
                    )
                )
        return problems

    def certificate_hosts(self, deployment: Deployment) -> list[str]:
        conference = deployment.conference
        return [conference.host] if conference is not None and conference.tls is None else []

    def materialize(self, deployment: Deployment, preparing: Preparing) -> None:
        conference, layout = deployment.conference, preparing.layout
        if conference is None or preparing.only is not None:
            return
        from homeport.conference.secrets import ensure_secrets

        ensure_secrets(conference, layout)
        if conference.tls is None:
            ensure_dir(layout.conference_tls_certificate.parent)
            pki.ensure_leaf(
                preparing.ca,
                conference.host,
                layout.conference_tls_certificate,
                layout.conference_tls_key,
            )

    def in_cluster(self, cluster: Deployment) -> Deployment:
        """It listens on every address of its pod (the Ingress and Prosody reach it)."""
        conference = cluster.conference
        if conference is None:
            return cluster
        listening = conference.model_copy(update={"address": EVERY_ADDRESS})
        return cluster.model_copy(update={"conference": listening})

    def cluster_roles(self, deployment: Deployment, layout: DeploymentLayout) -> list[ClusterRole]:
        """In the services' namespace: Prosody's token, its TLS files, the token secrets."""
        conference = deployment.conference
        if conference is None:
            return []
        if conference.tls is None:
            certificate, key = layout.conference_tls_certificate, layout.conference_tls_key
        else:
            certificate, key = conference.tls.certificate, conference.tls.key
        files = [layout.conference_auth_token, certificate, key]
        jitsi, livekit = conference.jitsi, conference.livekit
        if jitsi is not None:
            files.append(jitsi.app_secret_file or layout.conference_jitsi_secret)
        if livekit is not None:
            files.append(livekit.secret_file or layout.conference_livekit_secret)
        web = ClusterWeb(
            command=("conference", "-c", "{config}", "--prepared"),
            description="The conference service: Jitsi's Prosody, Element Call and clients",
            address=conference.address,
            port=conference.port,
            host=conference.host,
            certificate=certificate,
            key=key,
            open_paths=("/",),  # Prosody and Element Call, from anywhere
            admin_paths=("/metrics",),
        )
        everyone = tuple(deployment.homeservers)
        return [ClusterRole(CONFERENCE_SERVICE, None, tuple(files), everyone, web=web)]

    def synapse(self, deployment: Deployment, name: str, layout: DeploymentLayout) -> SynapsePieces:
        """`openid` named on the listeners; Element Call's LiveKit authoriser in
        `/.well-known/matrix/client` (MSC4143).

        `federation` already serves `openid/userinfo` (Synapse adds `openid` alone
        only without it); naming it keeps the need visible should a layout split
        federation off this listener. A closed `federation_domain_whitelist` does
        not block `openid/userinfo`, and naming it opens nothing more.
        """
        conference = deployment.conference
        if conference is None:
            return SynapsePieces()
        settings: dict[str, Any] = {}
        if conference.livekit is not None:
            focus = {"type": "livekit", "livekit_service_url": deployment.conference_url}
            settings = {
                "serve_client_wellknown": True,
                "extra_well_known_client_content": {"org.matrix.msc4143.rtc_foci": [focus]},
            }
        return SynapsePieces(resources=["openid"], settings=settings)

    def status(self, deployment: Deployment, layout: DeploymentLayout) -> dict[str, Any]:
        conference = deployment.conference
        if conference is None:
            return {"conference": None}
        from homeport.conference.secrets import jitsi_secret_file, livekit_secret_file

        def named(path: Path | None) -> str | None:
            return None if path is None else str(path)

        return {
            "conference": ConferenceStatus(
                url=deployment.conference_url or conference.url,
                auth_token_file=str(layout.conference_auth_token),
                jitsi_app_secret_file=named(jitsi_secret_file(conference, layout)),
                livekit_secret_file=named(livekit_secret_file(conference, layout)),
                jitsi_well_known_file=named(
                    layout.conference_jitsi_well_known if conference.jitsi else None
                ),
            )
        }


CAPABILITY = ConferenceCapability()
