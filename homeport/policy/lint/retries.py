"""Checks of federation_retries: backoff that hides an outage, or hammers dead servers.

The figures come from `policy/backoff.py`, which follows Synapse's own
algorithm; the thresholds below say where a setting stops serving people. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator

from homeport.config.deployment import Deployment
from homeport.policy.backoff import promise, spoken
from homeport.policy.lint.findings import Finding, KeyPath

RETRIES: KeyPath = ("federation_retries",)
# Beyond these, an outage stays invisible or a recovered server waits too long.
HIDDEN_FAILURE_AFTER_S = 120.0
LATE_RECOVERY_AFTER_S = 900.0
# Below these, every dead server on the network is retried in a tight loop.
HAMMER_MIN_INTERVAL_S = 5.0
HAMMER_MAX_INTERVAL_S = 30.0


def check_retries_hide_outages(deployment: Deployment, name: str) -> Iterator[Finding]:
    retries = deployment.homeservers[name].federation_retries
    figures = promise(retries)
    if figures.failure_recorded_within > HIDDEN_FAILURE_AFTER_S:
        yield Finding(
            "retries-hide-outages",
            "warning",
            name,
            (*RETRIES, "max_long_retries"),
            f"{name} records a failed server only after up to "
            f"{spoken(figures.failure_recorded_within)} of retries",
            "Until Synapse records a failure, the destination shows no failed attempt and "
            "its events pile up silently (Synapse's defaults take 7 to 12 minutes).",
            "lower max_long_retries or max_long_retry_delay (Homeport's defaults: 3 and 10s)",
        )
    if figures.recovered_within > LATE_RECOVERY_AFTER_S:
        yield Finding(
            "retries-hide-outages",
            "warning",
            name,
            (*RETRIES, "destination_max_retry_interval"),
            f"a server that comes back may wait up to {spoken(figures.recovered_within)} "
            f"for the events {name} owes it",
            "Synapse retries a failing server only when its backoff is over; messages sent "
            "during an outage arrive that much later, unless someone resets the connection.",
            "lower destination_max_retry_interval (Homeport's default: 1m)",
        )


def check_retries_hammer_dead_servers(deployment: Deployment, name: str) -> Iterator[Finding]:
    retries = deployment.homeservers[name].federation_retries
    figures = promise(retries)
    if (
        figures.first_retry_after < HAMMER_MIN_INTERVAL_S
        or figures.longest_backoff < HAMMER_MAX_INTERVAL_S
    ):
        key = (
            "destination_min_retry_interval"
            if figures.first_retry_after < HAMMER_MIN_INTERVAL_S
            else "destination_max_retry_interval"
        )
        yield Finding(
            "retries-hammer-dead-servers",
            "warning",
            name,
            (*RETRIES, key),
            f"{name} retries a dead server every {spoken(figures.longest_backoff)} at most, "
            "for as long as it is dead",
            "Every server that shares a room and stops answering costs a transaction of "
            f"{retries.max_long_retries + 1} requests per round, forever; on the open "
            "federation many servers are gone for good.",
            f"keep destination_min_retry_interval >= {spoken(HAMMER_MIN_INTERVAL_S)} and "
            f"destination_max_retry_interval >= {spoken(HAMMER_MAX_INTERVAL_S)}",
        )
