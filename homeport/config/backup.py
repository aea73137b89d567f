"""The `backup:` section: where `homeport backup` writes when no --out is given, and how many."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from homeport.config.base import StrictModel


class BackupSettings(StrictModel):
    """Archives of what matters (docs/deployment.md#backups-and-restore)."""

    directory: Path = Field(
        default=Path("backups"),
        description="Where `homeport backup` (and the rendered systemd timer) writes archives "
        "when no --out is given (relative to this file); keep it on another disk, or copy "
        "the archives off the machine.",
    )
    keep: int = Field(
        default=7,
        ge=1,
        le=1000,
        description="How many archives stay in `directory`: after a new one, the oldest "
        "beyond this are removed.",
    )
    media: bool = Field(
        default=True,
        description="Include the homeservers' media; false: leave them to your file backups.",
    )
    schedule: str = Field(
        default="daily",
        pattern=r"^[A-Za-z0-9 *:/,.~-]+$",
        description="When the rendered systemd timer runs it (systemd's OnCalendar=).",
    )
