"""How a notice is worded: the administrators' room message and each webhook format. Pure.

One notice lists the incidents of one homeserver that one check found due
(or ended). The room gets a Matrix notice (plain text and HTML, escaped);
the webhook Homeport's own JSON, a Slack-compatible `{"text"}`, or a list of
Alertmanager alerts (labels named like the Prometheus rules' alerts, so a
receiver routes both alike).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from homeport.alerts.incidents import Incident, Kind, Notice
from homeport.clock import iso
from homeport.config.alerts import WebhookFormat
from homeport.policy.backoff import spoken

MAX_LISTED = 20  # incidents named in one message; the rest are counted

# The alert names Prometheus' rules and Alertmanager payloads share (docs/alerts.md).
ALERT_NAMES: dict[Kind, str] = {
    "not_delivering": "HomeportFederationNotDelivering",
    "not_answering": "HomeportHomeserverNotAnswering",
    "never_worked": "HomeportFederationNeverWorked",
}


@dataclass(frozen=True)
class Context:
    """What the words need besides the notice."""

    server_name: str  # the homeserver's, whose administrators are told
    now_ms: int
    website: str | None = None  # the admin website's URL, if any
    notice_id: int | None = None


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def line(incident: Incident, context: Context) -> str:
    """One incident in one sentence, as a person reads it."""
    since = _clock(incident.started_ms)
    lasted = spoken((context.now_ms - incident.started_ms) / 1000)
    if incident.ended_ms is not None:
        took = spoken((incident.ended_ms - incident.started_ms) / 1000)
        fixed = {
            "not_delivering": "receives events again",
            "not_answering": "answers again",
            "never_worked": "works now",
        }[incident.kind]
        return (
            f"{incident.destination} {fixed} (since {_clock(incident.ended_ms)}; the "
            f"incident began {since} and lasted {took})."
        )
    if incident.kind == "not_delivering":
        return (
            f"{incident.destination} has received no events from {context.server_name} since "
            f"{since} ({lasted}): {incident.events} events in {incident.rooms} rooms wait."
        )
    if incident.kind == "not_answering":
        detail = f": {incident.detail}" if incident.detail else ""
        return f"{incident.destination} has not answered since {since} ({lasted}){detail}."
    return (
        f"{incident.destination} has never received anything from {context.server_name}: "
        f"Synapse's first failure was at {since} ({lasted})."
    )


def _heading(notice: Notice) -> str:
    count = len(notice.incidents)
    servers = "1 server" if count == 1 else f"{count} servers"
    if notice.status == "firing":
        return f"Federation alert on {notice.homeserver}: {servers}"
    return f"Federation recovered on {notice.homeserver}: {servers}"


def _listed(notice: Notice) -> tuple[Sequence[Incident], int]:
    shown = notice.incidents[:MAX_LISTED]
    return shown, len(notice.incidents) - len(shown)


def text(notice: Notice, context: Context) -> str:
    """The notice as plain text (the room's `body`, Slack's `text`)."""
    shown, more = _listed(notice)
    lines = [_heading(notice)] + [f"- {line(i, context)}" for i in shown]
    if more:
        lines.append(f"- and {more} more")
    if context.website and notice.status == "firing":
        lines.append(f"Federation tab: {context.website}/federation")
    return "\n".join(lines)


def room_message(notice: Notice, context: Context) -> dict[str, Any]:
    """A Matrix `m.notice`: bots speak in notices, which clients never answer."""
    shown, more = _listed(notice)
    items = "".join(f"<li>{html.escape(line(i, context))}</li>" for i in shown)
    if more:
        items += f"<li>and {more} more</li>"
    formatted = f"<p><strong>{html.escape(_heading(notice))}</strong></p><ul>{items}</ul>"
    if context.website and notice.status == "firing":
        url = html.escape(f"{context.website}/federation", quote=True)
        formatted += f'<p><a href="{url}">Federation tab</a></p>'
    return {
        "msgtype": "m.notice",
        "body": text(notice, context),
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
    }


def _incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "destination": incident.destination,
        "kind": incident.kind,
        "started_at": iso(incident.started_ms),
        "ended_at": iso(incident.ended_ms) if incident.ended_ms is not None else None,
        "rooms": incident.rooms,
        "events": incident.events,
        "detail": incident.detail,
    }


def alertmanager_alert(incident: Incident, context: Context) -> dict[str, Any]:
    """One alert as Alertmanager's `POST /api/v2/alerts` takes it."""
    alert: dict[str, Any] = {
        "labels": {
            "alertname": ALERT_NAMES[incident.kind],
            "homeserver": incident.homeserver,
            "server_name": context.server_name,
            "destination": incident.destination,
            "severity": "warning",
            "source": "homeport",
        },
        "annotations": {"summary": line(incident, context)},
        "startsAt": datetime.fromtimestamp(incident.started_ms / 1000, UTC).isoformat(),
    }
    if incident.ended_ms is not None:
        alert["endsAt"] = datetime.fromtimestamp(incident.ended_ms / 1000, UTC).isoformat()
    if context.website:
        alert["generatorURL"] = f"{context.website}/federation"
    return alert


def webhook_body(notice: Notice, form: WebhookFormat, context: Context) -> Any:
    """The JSON posted for `notice` in the webhook's format."""
    if form == "slack":
        return {"text": text(notice, context)}
    if form == "alertmanager":
        return [alertmanager_alert(i, context) for i in notice.incidents]
    return {
        "version": 1,
        "id": context.notice_id,
        "status": notice.status,
        "homeserver": notice.homeserver,
        "server_name": context.server_name,
        "text": text(notice, context),
        "incidents": [_incident_json(i) for i in notice.incidents],
    }
