"""Prometheus alerting rules that say what the alerts service says. Pure.

Rendered by `homeport render --target prometheus` (a rules file, and a scrape
job for the service's `/metrics`) and, as a `PrometheusRule` for the
Prometheus Operator, by `--target kubernetes`. Each rule fires on the same
condition as the service's own alert: an open incident of a watched
destination (`homeport_federation_incident_seconds`, exposed only for those)
that has lasted `grace`; `keep_firing_for: settle` holds it through a
flap as the service does. Two more say when the alerts themselves cannot be
trusted: the service stopped checking, or is gone.
"""

from __future__ import annotations

from typing import Any

from homeport.alerts.notices import ALERT_NAMES
from homeport.config.alerts import Alerts
from homeport.config.types import duration_ms

GROUP = "homeport-federation"
SCRAPE_JOB = "homeport-alerts"
STALE_AFTER_S = 60  # four checks missed

SUMMARIES = {
    "not_delivering": "{{ $labels.destination }} has received no events from "
    "{{ $labels.homeserver }} for {{ $value | humanizeDuration }}",
    "not_answering": "{{ $labels.destination }} has not answered for "
    "{{ $value | humanizeDuration }} (seen from {{ $labels.homeserver }})",
    "never_worked": "{{ $labels.destination }} has never received anything from "
    "{{ $labels.homeserver }} (first failure {{ $value | humanizeDuration }} ago)",
}
LABELS = {"severity": "warning", "source": "homeport"}


def rule_groups(alerts: Alerts) -> list[dict[str, Any]]:
    """The rules file's `groups`."""
    grace = duration_ms(alerts.grace) // 1000
    settle = duration_ms(alerts.settle) // 1000
    rules: list[dict[str, Any]] = [
        {
            "alert": name,
            "expr": f'homeport_federation_incident_seconds{{kind="{kind}"}} >= {grace}',
            "keep_firing_for": f"{settle}s",
            "labels": dict(LABELS),
            "annotations": {
                "summary": SUMMARIES[kind],
                "description": "Homeport's alerts service tells the administrators' room "
                "#homeport-alerts of {{ $labels.homeserver }} too (docs/alerts.md).",
            },
        }
        for kind, name in ALERT_NAMES.items()
    ]
    rules += [
        {
            "alert": "HomeportAlertsNotChecking",
            "expr": f"time() - homeport_alerts_last_round_timestamp_seconds > {STALE_AFTER_S}",
            "for": "1m",
            "labels": dict(LABELS),
            "annotations": {
                "summary": "Homeport's alerts service has not checked the homeservers for "
                "{{ $value | humanizeDuration }}: federation incidents go untold",
            },
        },
        {
            "alert": "HomeportAlertsAbsent",
            "expr": "absent(homeport_alerts_last_round_timestamp_seconds)",
            "for": "5m",
            "labels": dict(LABELS),
            "annotations": {
                "summary": "No metrics from Homeport's alerts service: is it running, and "
                f"does the `{SCRAPE_JOB}` job scrape it?",
            },
        },
    ]
    return [{"name": GROUP, "rules": rules}]


def scrape_config(alerts: Alerts, address: str = "127.0.0.1") -> dict[str, Any]:
    """A `scrape_configs` entry for the alerts service on this machine."""
    return {
        "job_name": SCRAPE_JOB,
        "scrape_interval": "15s",
        "static_configs": [{"targets": [f"{address}:{alerts.port}"]}],
    }


def prometheus_rule(alerts: Alerts, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """The same rules as a Prometheus Operator `PrometheusRule` object."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": GROUP, "namespace": namespace, "labels": labels},
        "spec": {"groups": rule_groups(alerts)},
    }
