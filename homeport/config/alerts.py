"""The `alerts:` section: federation incidents told to people without being asked.

A service of `homeport up` checks every homeserver's federation every
15 seconds: destinations whose events wait (Synapse's own bookkeeping),
sibling homeservers that stop answering, siblings that never worked. An
incident that lasts `grace` is said in an administrators' room on the
affected homeserver and to an optional webhook; its end likewise, once the
destination has worked for `settle`. Incidents are kept for the website's
history for `retention`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from homeport.config.base import StrictModel
from homeport.config.fields import Port
from homeport.config.types import Duration, ServerName, duration_ms

WebhookFormat = Literal["homeport", "slack", "alertmanager"]


class Webhook(StrictModel):
    """Where each alert and each recovery is also posted, as JSON."""

    url: str = Field(
        description="https:// (or http:// on loopback) address that takes a POST per notification."
    )
    format: WebhookFormat = Field(
        default="homeport",
        description="`homeport` (Homeport's own JSON, docs/alerts.md), `slack` (`{text}`: "
        "Slack, Mattermost, Rocket.Chat, Matrix hookshot) or `alertmanager` (a list of "
        "alerts for Alertmanager's `/api/v2/alerts`).",
    )
    token_file: Path | None = Field(
        default=None,
        description="File holding a bearer token sent as `Authorization: Bearer ...` "
        "(relative to this file; keep it 0600); left out: none.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value.startswith("https://"):
            return value
        loopback = ("http://127.0.0.1", "http://localhost", "http://[::1]")
        if any(value.startswith(prefix + end) for prefix in loopback for end in (":", "/")):
            return value
        raise ValueError(
            f"{value!r} is not a webhook address: write https://HOST/PATH (plain http:// "
            "only to a receiver on this machine's loopback)"
        )


class Alerts(StrictModel):
    """Federation incidents: when they are said, where, and how long they are kept."""

    port: Port = Field(description="Loopback port of the alerts service: /health and /metrics.")
    grace: Duration = Field(
        default="2m",
        description="How long a destination may fail (events waiting, a sibling not "
        "answering) before it is an incident people are told of.",
    )
    settle: Duration = Field(
        default="1m",
        description="How long it must work again before the incident ends and its recovery "
        "is said: a destination that flaps makes one incident, not a flood.",
    )
    admin_room: bool = Field(
        default=True,
        description="Say incidents in an administrators' room on the affected homeserver "
        "(`#homeport-alerts`, kept by Homeport, its server admins joined); false: no room.",
    )
    webhook: Webhook | None = Field(
        default=None, description="Also post each alert and recovery here; left out: none."
    )
    important: dict[str, list[ServerName]] = Field(
        default_factory=dict,
        description="Servers outside the file whose incidents are told too, by homeserver "
        "(`external: [partner.example.org]`); every homeserver of the file always is.",
    )
    retention: Duration = Field(
        default="30d",
        description="How long ended incidents are kept for the website's history.",
    )

    @field_validator("grace", "settle")
    @classmethod
    def _at_least_a_check(cls, value: str) -> str:
        if duration_ms(value) < 15_000:
            raise ValueError(f"{value} is shorter than one check (15s): write 15s or more")
        return value

    @field_validator("retention")
    @classmethod
    def _at_least_a_day(cls, value: str) -> str:
        if duration_ms(value) < 86_400_000:
            raise ValueError(f"{value} is shorter than a day: keep incidents at least 1d")
        return value
