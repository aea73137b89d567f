"""What verify and lint say of rooms that mix servers, from the module's report. Pure."""

from __future__ import annotations

from pathlib import Path

from homeport.config.loader import load_deployment_text
from homeport.config.starter import starter_text
from homeport.synapse.models import MixedRoom, MixedRoomsReport
from homeport.verify.mixed_rooms import SHOWN, findings

STARTER, _ = load_deployment_text(starter_text(), Path("homeport.yaml"))


def test_nothing_mixed_nothing_said() -> None:
    assert findings(STARTER, "internal", MixedRoomsReport([], 0, [])) == []


def test_mixed_rooms_are_a_warning_naming_rooms_and_servers() -> None:
    rooms = [
        MixedRoom(f"!r{n}", "Partners" if n == 0 else None, ["partner.org"], 2)
        for n in range(SHOWN + 2)
    ]
    (finding,) = findings(STARTER, "internal", MixedRoomsReport(rooms, 40, []))
    assert (finding.id, finding.severity, finding.homeserver) == (
        "mixed-rooms",
        "warning",
        "internal",
    )
    assert finding.message.startswith("40 room(s) of internal's users hold users of servers")
    assert "Partners (!r0): partner.org" in finding.message
    assert finding.message.endswith(f"; and {40 - SHOWN} more")
    assert finding.key == ("policy", "federation_domain_whitelist")


def test_a_join_that_never_completed_is_an_error() -> None:
    report = MixedRoomsReport([], 0, [("!hang", "Mixed"), ("!other", None)])
    (finding,) = findings(STARTER, "internal", report)
    assert (finding.id, finding.severity) == ("mixed-room-join-unfinished", "error")
    assert "Mixed (!hang); !other" in finding.message
