"""The conference service as a supervised service: `homeport conference --fd N`."""

from __future__ import annotations

import ssl
from pathlib import Path

from homeport.config.conference import Conference
from homeport.config.types import CONFERENCE_SERVICE
from homeport.layout import DeploymentLayout
from homeport.supervision.https_child import Child, HttpsChildService


class ConferenceService(HttpsChildService):
    def __init__(
        self,
        settings: Conference,
        config_path: Path,
        layout: DeploymentLayout,
        ssl_context: ssl.SSLContext,
        after: tuple[str, ...] = (),  # the homeservers: it vouches through them
    ) -> None:
        child = Child(
            name=CONFERENCE_SERVICE,
            kind="conference service",
            command="conference",
            label="the conference service",
            port_key="conference.port",
            address=settings.address,
            port=settings.port,
            host=settings.host,
            console_log=layout.conference_console,
            logs=(layout.conference_log,),
        )
        super().__init__(child, config_path, layout, ssl_context, after)
