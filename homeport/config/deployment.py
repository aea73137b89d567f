"""The deployment model: one `homeport.yaml` describes every homeserver and service.

One module per section (`homeserver`, `policy`, `admin`, `store`); this one
puts them together. Field docstrings double as documentation:
`docs/configuration.md` is checked against them by a test, so a setting
cannot go undocumented.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from homeport.config.admin import AdminWebsite
from homeport.config.base import StrictModel
from homeport.config.conference import Conference
from homeport.config.groupsync import GroupSync
from homeport.config.homeserver import Homeserver, HomeserverName
from homeport.config.store import StoreSettings


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
