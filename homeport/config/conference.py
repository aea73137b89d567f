"""The `conference:` section: who may join Jitsi conferences and Element Call calls.

One verification service vouches for the users of every homeserver of the
deployment (and of other servers you add): Jitsi's Prosody asks it, Jitsi
installations with plain token authentication get signed tokens from it, and
Element Call gets LiveKit tokens from it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from homeport.config.base import StrictModel
from homeport.config.fields import Port, listen_address, url_host
from homeport.config.homeserver import TlsFiles
from homeport.config.types import Duration, IpAddress, ServerName

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9-]{1,63}\.)*[a-zA-Z0-9-]{1,63}$")


def check_domain(value: str) -> str:
    if not _DOMAIN.match(value):
        raise ValueError(f"{value!r} is not a domain name: write it as meet.example.org")
    return value


def check_livekit_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ValueError(
            f"{value!r} is not a LiveKit address: write wss://HOST[:PORT] (what clients connect to)"
        )
    return value


@dataclass(frozen=True)
class AddressRule:
    """Addresses in `network`, on `port` only when it is given."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int | None = None


def parse_address_rule(value: str) -> AddressRule:
    """`10.1.2.3`, `10.1.0.0/16`, `127.0.0.1:8448` or `[fd00::5]:8448`."""
    text, port = value, None
    if value.startswith("["):
        text, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError("write [IPv6]:PORT")
            port = int(rest[1:])
    elif value.count(":") == 1:
        text, _, port_text = value.partition(":")
        if not port_text.isdigit():
            raise ValueError("write ADDRESS:PORT")
        port = int(port_text)
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{port} is not a port")
    if port is not None and "/" in text:
        raise ValueError("a port goes with one address, not a network")
    return AddressRule(ipaddress.ip_network(text, strict=True), port)


def check_address_rule(value: str) -> str:
    try:
        parse_address_rule(value)
    except ValueError as error:
        raise ValueError(
            f"{value!r} is not an address rule ({error}): write an address (10.1.2.3), a "
            "network (10.1.0.0/16, host bits zero) or an address with a port "
            "(127.0.0.1:8448, [fd00::5]:8448)"
        ) from None
    return value


AddressRuleText = Annotated[str, AfterValidator(check_address_rule)]


class Jitsi(StrictModel):
    """Signed tokens for a Jitsi installation with plain token authentication."""

    domain: Annotated[str, AfterValidator(check_domain)] = Field(
        description="The Jitsi domain (`sub` of the tokens; it serves "
        "`/.well-known/element/jitsi`)."
    )
    app_id: str = Field(
        min_length=1, description="Jitsi's `app_id`: the tokens' issuer and audience."
    )
    app_secret_file: Path | None = Field(
        default=None,
        description="File holding Jitsi's `app_secret` (mode 0600); left out: Homeport "
        "generates one in the data folder for you to give Prosody.",
    )
    ttl: Duration = Field(default="1h", description="How long a token is valid.")


class LiveKit(StrictModel):
    """LiveKit, the media server of Element Call (MatrixRTC)."""

    url: Annotated[str, AfterValidator(check_livekit_url)] = Field(
        description="The LiveKit server clients connect to, e.g. wss://livekit.example.org."
    )
    key: str = Field(min_length=1, description="LiveKit API key (`keys:` in livekit.yaml).")
    secret_file: Path | None = Field(
        default=None,
        description="File holding the API key's secret (mode 0600); left out: Homeport "
        "generates one in the data folder for you to give LiveKit.",
    )


class Conference(StrictModel):
    """The conference verification service that `homeport up` runs over HTTPS."""

    address: IpAddress = listen_address("service's HTTPS listener")
    port: Port = Field(description="TCP port of the service (HTTPS).")
    host: str = url_host("service", own_tls=True)
    tls: TlsFiles | None = Field(
        default=None, description="Your own certificate and key instead of the local CA's."
    )
    allow_homeservers: list[ServerName] = Field(
        default_factory=list,
        description="Server names whose users are vouched for besides the deployment's own "
        "homeservers (which always are).",
    )
    allow_private_addresses: list[AddressRuleText] = Field(
        default_factory=list,
        description="Loopback, private or link-local addresses where servers of "
        "`allow_homeservers` may be reached: an address, a network (10.1.0.0/16) or an "
        "address with a port (127.0.0.1:8448). The service connects to no other such "
        "address a partner's name resolves or delegates to; the deployment's own "
        "homeservers are reached wherever they are.",
    )
    jitsi: Jitsi | None = Field(
        default=None, description="Signed Jitsi tokens (`POST /jitsi/token`); left out: none."
    )
    livekit: LiveKit | None = Field(
        default=None,
        description="Element Call's LiveKit tokens (`POST /get_token`, `POST /sfu/get`); "
        "left out: none.",
    )

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def private_address_rules(self) -> tuple[AddressRule, ...]:
        return tuple(parse_address_rule(rule) for rule in self.allow_private_addresses)
