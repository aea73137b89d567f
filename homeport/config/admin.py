"""The `admin:` section: the admin website that `homeport up` serves."""

from __future__ import annotations

from pydantic import Field

from homeport.config.base import StrictModel
from homeport.config.types import IpAddress


class AdminWebsite(StrictModel):
    """The admin website that `homeport up` serves (and `homeport admin` alone)."""

    address: IpAddress = Field(
        default="127.0.0.1", description="IP address the website's HTTPS listener binds to."
    )
    port: int = Field(ge=1, le=65535, description="TCP port of the website (HTTPS).")
    host: str = Field(
        default="localhost",
        description="Host name in the website's URL; the local CA issues its certificate.",
    )
    session_idle_minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="A session without requests ends after this."
    )
    session_lifetime_hours: float = Field(
        default=12,
        gt=0,
        le=7 * 24,
        description="A session ends this long after its login, however active.",
    )

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"
