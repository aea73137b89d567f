"""The `proxy:` section: one reverse proxy serves every host of the deployment on 443.

With it, federation and clients reach each homeserver through the proxy on
its public host name (selected by SNI), and the homeservers' own listeners
stay private. `homeport render --target nginx` writes the proxy's
configuration; `up` renders Synapse for it (public URL, forwarded client
addresses).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

from homeport.config.base import StrictModel
from homeport.config.fields import Port
from homeport.config.types import IpAddress

DEFAULT_ADMIN_FROM = ["127.0.0.1/32", "::1/128"]


def check_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise ValueError(
            f"{value!r} is not an address range: write an address or a network such as "
            "10.0.0.0/8 (host bits zero)"
        ) from error
    return value


Network = Annotated[str, AfterValidator(check_network)]


class Proxy(StrictModel):
    """A reverse proxy (nginx) in front of every homeserver and service, on one port."""

    address: IpAddress | None = Field(
        default=None,
        description="Address the proxy listens on; left out: every address, IPv4 and IPv6.",
    )
    port: Port = Field(
        default=443,
        description="Port the proxy serves HTTPS on; federation and clients use it.",
    )
    admin_from: list[Network] = Field(
        default_factory=lambda: list(DEFAULT_ADMIN_FROM),
        description="Addresses allowed to reach `/_synapse/admin`, `/_homeport/` and the "
        "admin website through the proxy; everyone else gets 403.",
    )
    forwarded_from: list[Network] = Field(
        default_factory=lambda: ["127.0.0.1/32", "::1/128"],
        description="Where the proxy connects from: the admin website and the conference "
        "service take the client's address from X-Forwarded-For on connections from these "
        "only (the Kubernetes rendering sets the pod networks).",
    )
    managed: bool = Field(
        default=False,
        description="`homeport up` runs nginx itself with the rendered configuration (a "
        "machine without a system nginx, workers on one machine); false: include the "
        "rendered file in the system's nginx.",
    )
    hsts_max_age: int = Field(
        default=31536000,
        ge=0,
        description="Strict-Transport-Security max-age in seconds (0: no HSTS header).",
    )

    def public_url(self, host: str) -> str:
        """`https://host` with the port when it is not 443."""
        return f"https://{host}" if self.port == 443 else f"https://{host}:{self.port}"
