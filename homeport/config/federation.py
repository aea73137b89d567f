"""How a homeserver retries the servers it sends events to: Synapse's `federation:` section.

Synapse's defaults suit the open federation, where most unreachable servers
are gone for good: ten long retries inside one transaction (7 to 12 minutes
before a failure is recorded at all), then a backoff that starts at 10
minutes and doubles up to 7 days. An organisation's own homeservers want the
opposite: an outage that shows within a minute, and a recovered server that
gets its events within a minute or two. Homeport's defaults say so; the
trade-off (more retry traffic toward dead servers) is in docs/configuration.md.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from homeport.config.base import StrictModel
from homeport.config.types import Duration, duration_ms

# Synapse's own values, for comparison in docs and lint.
SYNAPSE_DEFAULTS: dict[str, Any] = {
    "max_long_retries": 10,
    "max_long_retry_delay": "60s",
    "destination_min_retry_interval": "10m",
    "destination_retry_multiplier": 2,
    "destination_max_retry_interval": "7d",
}


class FederationRetries(StrictModel):
    """Retry settings rendered into Synapse's `federation:` section."""

    max_long_retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Attempts after the first inside one transaction before Synapse records "
        "a failure (Synapse's default: 10).",
    )
    max_long_retry_delay: Duration = Field(
        default="10s",
        description="Longest wait between those attempts; the waits are 4 s, 16 s, 64 s... "
        "capped here, with jitter 0.8-1.4 (Synapse's default: 60s).",
    )
    destination_min_retry_interval: Duration = Field(
        default="30s",
        description="Backoff after the first recorded failure (Synapse's default: 10m).",
    )
    destination_retry_multiplier: float = Field(
        default=2,
        ge=1,
        le=10,
        description="Factor the backoff grows by after each further failure (Synapse's: 2).",
    )
    destination_max_retry_interval: Duration = Field(
        default="1m",
        description="Longest backoff: a recovered server gets its events at most this long "
        "(plus Synapse's one-minute catch-up round) after it is back (Synapse's default: 7d).",
    )

    @field_validator("destination_max_retry_interval")
    @classmethod
    def _max_not_below_min(cls, value: str, info: ValidationInfo) -> str:
        shortest = info.data.get("destination_min_retry_interval")
        if shortest is not None and duration_ms(value) < duration_ms(shortest):
            raise ValueError(
                f"{value} is shorter than destination_min_retry_interval ({shortest}); "
                "make the maximum at least the minimum"
            )
        return value

    def synapse_settings(self) -> dict[str, Any]:
        """The keys of Synapse's `federation:` section, in milliseconds where a duration."""
        return {
            "max_long_retries": self.max_long_retries,
            "max_long_retry_delay": duration_ms(self.max_long_retry_delay),
            "destination_min_retry_interval": duration_ms(self.destination_min_retry_interval),
            "destination_retry_multiplier": self.destination_retry_multiplier,
            "destination_max_retry_interval": duration_ms(self.destination_max_retry_interval),
        }


# The keys of Synapse's `federation:` section that the model owns.
RETRY_KEYS: tuple[str, ...] = tuple(FederationRetries.model_fields)
