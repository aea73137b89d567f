"""The deployment model: one `homeport.yaml` describes every homeserver and service.

One module per section (`homeserver`, `policy`, `admin`, `store`); this one
puts them together. Field docstrings double as documentation:
`docs/configuration.md` is checked against them by a test, so a setting
cannot go undocumented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from homeport.config.admin import AdminWebsite
from homeport.config.alerts import Alerts
from homeport.config.backup import BackupSettings
from homeport.config.base import StrictModel
from homeport.config.conference import Conference
from homeport.config.groupsync import GroupSync
from homeport.config.homeserver import Homeserver, HomeserverName
from homeport.config.kubernetes import Kubernetes
from homeport.config.proxy import Proxy
from homeport.config.store import StoreSettings
from homeport.config.workers import Redis


class Deployment(StrictModel):
    """Everything `homeport up` runs, as one file describes it."""

    data_dir: Path = Field(
        default=Path("data"),
        description="Where keys, certificates, databases, media and logs live "
        "(relative to this file).",
    )
    trusted_ca_files: list[Path] = Field(
        default_factory=list,
        description="Extra CA certificates trusted for federation, besides the local CA.",
    )
    homeservers: dict[HomeserverName, Homeserver] = Field(
        min_length=1, description="The homeservers, by a short name such as `internal`."
    )
    admin: AdminWebsite | None = Field(
        default=None,
        description="The admin website (login as a server admin); left out: no website.",
    )
    store: StoreSettings = Field(
        default_factory=StoreSettings,
        description="Homeport's own database: SQLite in the data folder, or PostgreSQL.",
    )
    group_sync: GroupSync | None = Field(
        default=None,
        description="Directory groups that drive space membership on one homeserver; "
        "left out: no group sync.",
    )
    conference: Conference | None = Field(
        default=None,
        description="The conference verification service for Jitsi and Element Call; "
        "left out: none.",
    )
    kubernetes: Kubernetes | None = Field(
        default=None,
        description="How `homeport render --target kubernetes` lays out the cluster: one "
        "namespace per homeserver; left out: the defaults.",
    )
    redis: Redis | None = Field(
        default=None,
        description="The Redis Synapse's processes replicate over; needed by `workers:`.",
    )
    backup: BackupSettings = Field(
        default_factory=BackupSettings,
        description="Where `homeport backup` writes its archives and how many it keeps.",
    )
    alerts: Alerts | None = Field(
        default=None,
        description="Federation incidents said in an administrators' room and to a webhook, "
        "and kept for the website's history; left out: none of that.",
    )
    proxy: Proxy | None = Field(
        default=None,
        description="A reverse proxy serving every host on one port (443): "
        "`homeport render --target nginx`; left out: each listener is public itself.",
    )

    @property
    def conference_url(self) -> str | None:
        """Where clients and Jitsi reach the conference service: through the proxy if any."""
        if self.conference is None:
            return None
        return self._through_proxy(self.conference.host, self.conference.url)

    @property
    def admin_url(self) -> str | None:
        """Where administrators open the website: through the proxy if any."""
        if self.admin is None:
            return None
        return self._through_proxy(self.admin.host, self.admin.url)

    def _through_proxy(self, host: str, direct: str) -> str:
        return direct if self.proxy is None else self.proxy.public_url(host)

    @model_validator(mode="before")
    @classmethod
    def _public_urls_behind_proxy(cls, data: Any) -> Any:
        """Behind a proxy, a homeserver's public URL is the proxy's, on its public host.

        Filled in before validation so that everything reading
        `public_baseurl` (Synapse's config, clients, status) agrees.
        """
        if not isinstance(data, dict) or not isinstance(data.get("proxy"), dict):
            return data
        port = data["proxy"].get("port", 443)
        homeservers = data.get("homeservers")
        if not isinstance(homeservers, dict) or not isinstance(port, int):
            return data
        filled = {}
        for name, hs in homeservers.items():
            if isinstance(hs, dict) and hs.get("public_baseurl") is None:
                host = hs.get("public_host") or str(hs.get("server_name", "")).rsplit(":", 1)[0]
                if host.startswith("[") or not host:
                    filled[name] = hs
                    continue
                url = f"https://{host}" if port == 443 else f"https://{host}:{port}"
                hs = {**hs, "public_baseurl": url}
            filled[name] = hs
        return {**data, "homeservers": filled}
