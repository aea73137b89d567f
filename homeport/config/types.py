"""Small value types shared by the sections: names, addresses and database URLs."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BeforeValidator

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,255}}$){_LABEL}(?:\.{_LABEL})*$")
_HOMESERVER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Names of Homeport's own services: `homeport stop NAME` and the `services`
# map of `homeport status` share one namespace with the homeservers.
ADMIN_SERVICE = "admin"
GROUPSYNC_SERVICE = "groupsync"
CONFERENCE_SERVICE = "conference"
PROXY_SERVICE = "proxy"
ALERTS_SERVICE = "alerts"
RESERVED_SERVICE_NAMES = (
    ADMIN_SERVICE,
    GROUPSYNC_SERVICE,
    CONFERENCE_SERVICE,
    PROXY_SERVICE,
    ALERTS_SERVICE,
)
# Each homeserver's audit bot runs as the service `audit-<homeserver>`.
AUDIT_SERVICE_PREFIX = "audit-"


@dataclass(frozen=True)
class ServerAddress:
    """A Matrix server name split into host and optional port."""

    host: str
    port: int | None

    @property
    def is_ip_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host.strip("[]"))
        except ValueError:
            return False
        return True


def split_server_name(name: str) -> ServerAddress:
    """Split `host[:port]` (IPv6 literals in brackets) as the Matrix spec defines it."""
    if name.startswith("["):
        host, _, rest = name.partition("]")
        host += "]"
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(f"{name!r} is not a server name: junk after the IPv6 literal")
    else:
        host, sep, port_text_ = name.rpartition(":")
        if not sep:
            host, port_text = name, None
        else:
            port_text = port_text_
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{name!r} has an invalid port {port_text!r}")
        port = int(port_text)
    return ServerAddress(host=host, port=port)


def check_server_name(name: str) -> str:
    """A Matrix server name: `host[:port]`, lower-case, no scheme, no path."""
    if "://" in name or "/" in name:
        raise ValueError(
            f"{name!r} looks like a URL; a server name is host[:port], e.g. localhost:8448"
        )
    address = split_server_name(name)
    if address.host.startswith("["):
        try:
            ipaddress.IPv6Address(address.host[1:-1])
        except ValueError as error:
            raise ValueError(f"{name!r}: {address.host} is not an IPv6 address") from error
    elif not address.is_ip_literal and not _DNS_NAME.match(address.host):
        raise ValueError(
            f"{name!r} is not a valid server name: use lower-case letters, digits, dots and "
            "hyphens, then an optional :port"
        )
    return name


def check_homeserver_name(name: str) -> str:
    if not _HOMESERVER_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a valid homeserver name: start with a lower-case letter, then "
            "up to 31 lower-case letters, digits, '-' or '_'"
        )
    if name in RESERVED_SERVICE_NAMES or name.startswith(AUDIT_SERVICE_PREFIX):
        raise ValueError(
            f"{name!r} is (or starts like) the name of one of Homeport's own services "
            f"({', '.join(RESERVED_SERVICE_NAMES)}, {AUDIT_SERVICE_PREFIX}<homeserver>); "
            "choose another homeserver name"
        )
    return name


ServerName = Annotated[str, AfterValidator(check_server_name)]


_LOCALPART = re.compile(r"^[a-z0-9._=/+-]{1,64}$")


def localpart_check(what: str, becomes: str) -> Callable[[str], str]:
    """The check of a name that becomes the localpart of a Matrix ID or alias: `what`
    the file calls it, and what it `becomes`."""

    def check(value: str) -> str:
        if not _LOCALPART.match(value):
            raise ValueError(
                f"{value!r} is not {what}: use up to 64 lower-case letters, digits and "
                f"._=/+- ({becomes})"
            )
        return value

    return check


def check_ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError as error:
        raise ValueError(
            f"{value!r} is not an IP address; use e.g. 127.0.0.1, or 0.0.0.0 for all interfaces"
        ) from error
    return value


IpAddress = Annotated[str, AfterValidator(check_ip_address)]


def check_host(value: str) -> str:
    """A host to connect to: a DNS name or an IP address, without scheme or port."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _DNS_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a host: write a DNS name (synapse.example.internal) or an "
                "IP address, without scheme or port"
            ) from None
    return value


Host = Annotated[str, AfterValidator(check_host)]


def connect_address(bound: str) -> str:
    """Where to connect to a listener bound to `bound`: itself, or loopback for "all"."""
    address = ipaddress.ip_address(bound)
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "::1"
    return str(address)


@dataclass(frozen=True)
class PostgresUrl:
    """The parts of a `postgresql://` URL that Synapse's psycopg2 config needs."""

    user: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str


def redacted(url: str) -> str:
    """A database URL fit for an error message or a log: its password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def parse_postgres_url(url: str) -> PostgresUrl:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(
            f"{redacted(url)!r}: expected 'sqlite' or a postgresql://user@host:port/db URL"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError(
            "the PostgreSQL URL names no database; write postgresql://user@host:5432/DBNAME"
        )
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"the PostgreSQL URL has an invalid port: {error}") from error
    return PostgresUrl(
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        host=parts.hostname,
        port=port,
        database=database,
    )


def check_database(value: str) -> str:
    if value == "sqlite":
        return value
    parse_postgres_url(value)
    return value


Database = Annotated[str, AfterValidator(check_database)]


@dataclass(frozen=True)
class _Units:
    """A quantity written as Synapse writes durations and sizes: a whole number, a unit."""

    noun: str  # what the error messages call it: "a duration"
    scale: dict[str, int]  # each unit's worth
    how: str  # how to write one, for a text that is not one
    examples: str  # a few, for a value that is not text at all
    zero: bool  # whether 0 is an amount (a size of 0 is not)

    def amount(self, text: str) -> int:
        match = re.match(rf"^(\d+)({'|'.join(self.scale)})$", text)
        if match is None or (not self.zero and int(match.group(1)) == 0):
            raise ValueError(f"{text!r} is not {self.noun}: {self.how}")
        return int(match.group(1)) * self.scale[match.group(2)]

    def check(self, value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not {self.noun}: give it a unit, e.g. {self.examples}")
        self.amount(value)
        return value


_DURATIONS = _Units(
    "a duration",
    {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000},
    "write a whole number and a unit, e.g. 500ms, 30s, 5m, 2h, 7d or 1w",
    "30s, 5m or 7d",
    zero=True,
)
_SIZES = _Units(
    "a size",
    {"K": 1024, "M": 1024**2, "G": 1024**3},
    "write a whole number and K, M or G, e.g. 100M",
    "100M or 1G",
    zero=False,
)


def duration_ms(text: str) -> int:
    """Milliseconds of a duration such as `30s`, `5m` or `7d` (Synapse's units)."""
    return _DURATIONS.amount(text)


def size_bytes(text: str) -> int:
    """Bytes of a size such as `512K`, `100M` or `1G` (Synapse's units)."""
    return _SIZES.amount(text)


check_duration = _DURATIONS.check
check_size = _SIZES.check
Duration = Annotated[str, BeforeValidator(check_duration)]
ByteSize = Annotated[str, BeforeValidator(check_size)]
