"""The `workers:` section of a homeserver and the deployment's `redis:`: Synapse's worker model.

When one Synapse process is not enough, Synapse splits its work over worker
processes that share its PostgreSQL database and talk over Redis and HTTP
replication. Homeport declares how many of each kind, and renders every
name, port, instance map and stream writer from that; nothing is written by
hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from homeport.config.base import StrictModel
from homeport.config.fields import Port

WorkerKind = Literal["generic", "media", "federation_sender", "pusher", "event_persister"]


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process: its Synapse instance name, kind and port (see `Workers.specs`)."""

    name: str  # e.g. "generic-1": unique within the homeserver
    kind: WorkerKind
    port: int  # its one listener: HTTP for generic and media, replication otherwise

    @property
    def serves_http(self) -> bool:
        """Takes client and federation requests (or media) from the proxy."""
        return self.kind in ("generic", "media")

    @property
    def replication(self) -> bool:
        """Other processes call it over HTTP replication: it is in `instance_map`."""
        return self.kind == "event_persister"


def _processes(most: int, description: str) -> Any:
    """How many worker processes of one kind: none unless the file says, `most` at most."""
    return Field(default=0, ge=0, le=most, description=description)


class Workers(StrictModel):
    """How many worker processes of each kind run beside a homeserver's main process."""

    generic: int = _processes(
        32,
        "Client and federation requests Synapse lets workers serve (sync, "
        "reads, event sending, inbound federation); the proxy spreads them.",
    )
    federation_senders: int = _processes(16, "Outgoing federation, sharded by destination.")
    media: int = _processes(
        8,
        "The media repository (uploads, downloads, thumbnails); the first "
        "one runs its background jobs.",
    )
    pushers: int = _processes(16, "Push notifications, sharded.")
    event_persisters: int = _processes(
        16, "Writers of the events stream (sharded by room); 0: the main process."
    )
    port_base: Port | None = Field(
        default=None,
        description="First port of the workers' listeners, on 127.0.0.1: the main "
        "process's replication listener, then one per worker in order. Required with workers.",
    )

    @property
    def count(self) -> int:
        return (
            self.generic
            + self.federation_senders
            + self.media
            + self.pushers
            + self.event_persisters
        )

    def specs(self) -> list[WorkerSpec]:
        """Every worker, named and given its port, in a stable order."""
        assert self.port_base is not None or self.count == 0
        base = (self.port_base or 0) + 1
        kinds: list[tuple[WorkerKind, str, int]] = [
            ("generic", "generic", self.generic),
            ("media", "media", self.media),
            ("federation_sender", "federation-sender", self.federation_senders),
            ("pusher", "pusher", self.pushers),
            ("event_persister", "event-persister", self.event_persisters),
        ]
        specs: list[WorkerSpec] = []
        for kind, prefix, count in kinds:
            for i in range(1, count + 1):
                specs.append(WorkerSpec(f"{prefix}-{i}", kind, base + len(specs)))
        return specs

    @property
    def replication_port(self) -> int | None:
        """The main process's HTTP replication listener."""
        return self.port_base


def check_redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(
            f"{value!r} is not a Redis URL: write redis://host:port[/db] "
            "(rediss:// for TLS), e.g. redis://127.0.0.1:6379"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        raise ValueError(f"{value!r}: {error}") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"{value!r}: the database after the host is a number, e.g. /0")
    return value


RedisUrl = Annotated[str, AfterValidator(check_redis_url)]


class Redis(StrictModel):
    """The Redis that Synapse's processes replicate over (needed with workers)."""

    url: RedisUrl = Field(
        default="redis://127.0.0.1:6379",
        description="redis://[:password@]host:port[/db] (rediss:// for TLS).",
    )

    def synapse_settings(self) -> dict[str, object]:
        parts = urlsplit(self.url)
        settings: dict[str, object] = {
            "enabled": True,
            "host": parts.hostname,
            "port": parts.port or 6379,
        }
        if parts.path.strip("/"):
            settings["dbid"] = int(parts.path.strip("/"))
        if parts.password:
            settings["password"] = parts.password
        if parts.scheme == "rediss":
            settings["use_tls"] = True
        return settings
