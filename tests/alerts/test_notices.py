"""What administrators read: the room's notice and each webhook format. Pure."""

from __future__ import annotations

from homeport.alerts.incidents import Incident, Notice
from homeport.alerts.notices import MAX_LISTED, Context, room_message, text, webhook_body

NOW = 1_700_000_600_000  # 2023-11-14 22:23:20 UTC
START = NOW - 600_000
CONTEXT = Context("internal:8448", NOW, "https://admin.example.org:8450", notice_id=42)


def incident(destination: str = "external:8449", **changes: object) -> Incident:
    values: dict[str, object] = {
        "homeserver": "internal",
        "destination": destination,
        "kind": "not_delivering",
        "started_ms": START,
        "last_bad_ms": NOW,
        "rooms": 3,
        "events": 12,
        "alerted": True,
        "id": 7,
    }
    values.update(changes)
    return Incident(**values)  # type: ignore[arg-type]


def test_each_kind_in_words() -> None:
    notice = Notice(
        "internal",
        "firing",
        (
            incident(),
            incident(kind="not_answering", detail="connection refused or no route to it"),
            incident(kind="never_worked"),
        ),
    )
    assert text(notice, CONTEXT).splitlines() == [
        "Federation alert on internal: 3 servers",
        "- external:8449 has received no events from internal:8448 since 2023-11-14 22:13 UTC "
        "(10 min): 12 events in 3 rooms wait.",
        "- external:8449 has not answered since 2023-11-14 22:13 UTC (10 min): connection "
        "refused or no route to it.",
        "- external:8449 has never received anything from internal:8448: Synapse's first "
        "failure was at 2023-11-14 22:13 UTC (10 min).",
        "Federation tab: https://admin.example.org:8450/federation",
    ]
    ended = Notice("internal", "resolved", (incident(ended_ms=NOW - 60_000),))
    assert text(ended, CONTEXT).splitlines() == [
        "Federation recovered on internal: 1 server",
        "- external:8449 receives events again (since 2023-11-14 22:22 UTC; the incident "
        "began 2023-11-14 22:13 UTC and lasted 9 min).",
    ]


def test_the_room_gets_an_escaped_notice_and_a_long_list_is_cut() -> None:
    hostile = incident(kind="not_answering", detail="<script>alert(1)</script>")
    many = tuple(incident(f"s{n}.example.org") for n in range(MAX_LISTED + 5))
    message = room_message(Notice("internal", "firing", (hostile, *many)), CONTEXT)
    assert message["msgtype"] == "m.notice"
    assert "<script>" not in message["formatted_body"]
    assert "&lt;script&gt;" in message["formatted_body"]
    assert message["formatted_body"].count("<li>") == MAX_LISTED + 1
    assert "<li>and 6 more</li>" in message["formatted_body"]
    assert message["body"].endswith("Federation tab: https://admin.example.org:8450/federation")


def test_each_webhook_format() -> None:
    notice = Notice("internal", "resolved", (incident(ended_ms=NOW),))
    assert webhook_body(notice, "slack", CONTEXT) == {"text": text(notice, CONTEXT)}
    own = webhook_body(notice, "homeport", CONTEXT)
    assert own["id"] == 42
    assert own["status"] == "resolved"
    assert own["incidents"] == [
        {
            "id": 7,
            "destination": "external:8449",
            "kind": "not_delivering",
            "started_at": "2023-11-14T22:13:20.000+00:00",
            "ended_at": "2023-11-14T22:23:20.000+00:00",
            "rooms": 3,
            "events": 12,
            "detail": "",
        }
    ]
    (alert,) = webhook_body(notice, "alertmanager", CONTEXT)
    assert alert["labels"] == {
        "alertname": "HomeportFederationNotDelivering",
        "homeserver": "internal",
        "server_name": "internal:8448",
        "destination": "external:8449",
        "severity": "warning",
        "source": "homeport",
    }
    assert alert["startsAt"] == "2023-11-14T22:13:20+00:00"
    assert alert["endsAt"] == "2023-11-14T22:23:20+00:00"
    assert alert["generatorURL"] == "https://admin.example.org:8450/federation"
