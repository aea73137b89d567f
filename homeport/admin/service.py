"""The admin website as a supervised service: `homeport admin --fd N` on a port `up` binds."""

from __future__ import annotations

import ssl
from pathlib import Path

from homeport.config.admin import AdminWebsite
from homeport.config.types import ADMIN_SERVICE
from homeport.layout import DeploymentLayout
from homeport.supervision.https_child import Child, HttpsChildService


class AdminWebsiteService(HttpsChildService):
    def __init__(
        self,
        settings: AdminWebsite,
        config_path: Path,
        layout: DeploymentLayout,
        ssl_context: ssl.SSLContext,
        after: tuple[str, ...] = (),  # the homeservers: the website is no use before them
    ) -> None:
        child = Child(
            name=ADMIN_SERVICE,
            kind="admin website",
            command="admin",
            label="the admin website",
            port_key="admin.port",
            address=settings.address,
            port=settings.port,
            host=settings.host,
            console_log=layout.admin_log,
            niceness=10,  # the homeservers serve everyone; the website a few admins
        )
        super().__init__(child, config_path, layout, ssl_context, after)
