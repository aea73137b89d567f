"""The `store:` section: Homeport's own database (verify reports, website actions, ...)."""

from __future__ import annotations

from pydantic import Field

from homeport.config.base import StrictModel
from homeport.config.types import Database


class StoreSettings(StrictModel):
    """Where Homeport keeps its own records; Synapse's databases are separate."""

    database: Database = Field(
        default="sqlite",
        description="`sqlite` (`homeport.db` in the data folder) or a "
        "postgresql://user@host:port/db URL.",
    )
