"""The `admin:` section: the admin website that `homeport up` serves."""

from __future__ import annotations

from pydantic import Field

from homeport.config.base import StrictModel
from homeport.config.fields import Port, listen_address, url_host
from homeport.config.types import IpAddress


class AdminWebsite(StrictModel):
    """The admin website that `homeport up` serves (and `homeport admin` alone)."""

    address: IpAddress = listen_address("website's HTTPS listener")
    port: Port = Field(description="TCP port of the website (HTTPS).")
    host: str = url_host("website")
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
