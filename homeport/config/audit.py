"""The `audit:` section of a homeserver: its audit bot, an application service.

Administrators add the bot to chosen rooms created on its own homeserver
(`homeport audit add`, the admin website); it records every event there,
encrypted or not, into Homeport's store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from homeport.config.base import StrictModel
from homeport.config.fields import Port
from homeport.config.types import ByteSize, localpart_check

check_localpart = localpart_check("a user name", "the bot's user ID is @<localpart>:<server name>")
Localpart = Annotated[str, AfterValidator(check_localpart)]


class AuditExport(StrictModel):
    """A continuous export of every recorded event to JSON-lines files."""

    directory: Path = Field(
        description="Folder of the export files (relative to this file); one file per day, "
        "a new one when it reaches `max_file_size`."
    )
    max_file_size: ByteSize = Field(
        default="100M", description="Size at which a new file starts, e.g. 10M or 1G."
    )


class AuditBot(StrictModel):
    """The audit bot of one homeserver: added to chosen local rooms, it records them."""

    enabled: bool = Field(default=True, description="Run the bot and register it with Synapse.")
    localpart: Localpart = Field(
        default="audit", description="The bot's user name: @<localpart>:<server name>."
    )
    displayname: str = Field(
        default="Audit bot (recording)",
        min_length=1,
        max_length=100,
        description="What members see; say that the room is recorded.",
    )
    port: Port = Field(
        description="Loopback port where the bot receives Synapse's transactions (HTTP on "
        "127.0.0.1 only, authenticated by a token generated once).",
    )
    auto_join: Literal["none", "local_rooms"] = Field(
        default="none",
        description="`none`: only rooms an administrator adds; `local_rooms`: every room "
        "and space created on this homeserver, including those created before.",
    )
    include_direct_messages: bool = Field(
        default=False,
        description="With `auto_join: local_rooms`, also direct-message rooms.",
    )
    export: AuditExport | None = Field(
        default=None, description="Also write every recorded event to files as it arrives."
    )
