"""A destination's 30 days of incidents, as the destination page draws them. Pure."""

from __future__ import annotations

from homeport.admin.actions import Action
from homeport.admin.timeline import DAY_MS, SHORTEST, WIDTH, timeline
from homeport.alerts.incidents import Incident

NOW = 1_700_000_000_000
MIN = 60_000


def incident(started: int, ended: int | None, kind: str = "not_delivering") -> Incident:
    return Incident(
        "internal", "external:8449", kind, started, ended or NOW, ended_ms=ended,  # type: ignore[arg-type]
        rooms=2, events=9, alerted=True,
    )  # fmt: skip


def test_bars_sit_where_their_incidents_were_and_short_ones_still_show() -> None:
    half_way = NOW - 15 * DAY_MS
    drawn = timeline(
        [
            incident(NOW - 40 * DAY_MS, NOW - 39 * DAY_MS),  # before the window: left out
            incident(NOW - 31 * DAY_MS, NOW - 29 * DAY_MS),  # crosses its start: cut
            incident(half_way, half_way + MIN),  # one minute
            incident(NOW - 2 * 3600_000, None, "not_answering"),  # ongoing
        ],
        [],
        NOW,
    )
    assert [(b.x, b.kind) for b in drawn.bars] == [
        (0.0, "not_delivering"),
        (500.0, "not_delivering"),
        (997.2, "not_answering"),
    ]
    assert drawn.bars[0].width == round(WIDTH / 30, 1)
    assert drawn.bars[1].width == SHORTEST
    assert drawn.bars[2].x + drawn.bars[2].width == WIDTH
    assert drawn.bars[2].label.endswith("2 h (ongoing)")
    assert [t.x for t in drawn.ticks] == [66.7, 300.0, 533.3, 766.7, 1000.0]
    assert drawn.summary == "3 incidents in the last 30 days, 1 ongoing."
    newest = drawn.lines[0]
    assert (newest.what, newest.ended, newest.waited) == ("not answering", None, "")
    assert drawn.lines[1].waited == "9 events in 2 rooms"


def test_a_reset_during_an_incident_is_named_with_who_pressed_it() -> None:
    start = NOW - DAY_MS
    actions = [
        Action(start - MIN, "internal", "@early:hs", "reset_connection", "external:8449", "done"),
        Action(start + MIN, "internal", "@root:hs", "reset_connection", "external:8449", "done"),
    ]
    (line,) = timeline([incident(start, start + 5 * MIN)], actions, NOW).lines
    assert line.reset_by == "@root:hs"
    (quiet,) = timeline([incident(start, start + 5 * MIN)], actions[:1], NOW).lines
    assert quiet.reset_by is None
    assert timeline([], [], NOW).summary == "No incident in the last 30 days."
