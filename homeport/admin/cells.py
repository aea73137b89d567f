"""The Federation tab's cells as HTML, made in Python: a page has 25 rows of them, and
Jinja macros cost several times a function's call. Each value is escaped (Markup)."""

from __future__ import annotations

from markupsafe import Markup, escape

from homeport.admin.present import When
from homeport.admin.rows import DestinationRow

NONE = Markup('<span class="none">–</span>')


def moment(w: When | None) -> Markup:
    """A moment as absolute time with zone and as relative words."""
    if not w:
        return NONE
    # escape() rather than Markup.format(): the same escaping, several times faster.
    absolute = escape(w.absolute)
    return Markup(  # noqa: S704 - every value escaped
        f'<time datetime="{escape(w.iso)}" title="{absolute}">{absolute}</time> '
        f'<span class="relative">({escape(w.relative)})</span>'
    )


def status_badge(status: str) -> Markup:
    slug = escape(status.lower().replace(" ", "-"))
    return Markup(f'<span class="status status-{slug}">{escape(status)}</span>')  # noqa: S704


def undelivered(d: DestinationRow) -> Markup:
    if not d.undelivered_since:
        return NONE
    rooms = "room" if d.waiting_rooms == 1 else "rooms"
    return moment(d.undelivered_since) + Markup(  # noqa: S704 - a number, a fixed word
        f' <span class="rooms">in {int(d.waiting_rooms)} {rooms}</span>'
    )


def next_attempt(d: DestinationRow) -> Markup:
    if d.next_attempt_due:
        return Markup(
            '<span class="due">due: with the next event or Synapse\'s next catch-up round '
            "(every minute)</span>"
        )
    return moment(d.next_attempt)


def last_incident(d: DestinationRow) -> Markup:
    i = d.last_incident
    if i is None:
        return NONE
    if i.open:
        badge = Markup('<span class="status status-failing">{}</span>').format(i.what)
        return badge + Markup(" since ") + moment(i.started)
    return (
        Markup("{}, ended ").format(i.what)
        + moment(i.ended)
        + Markup(", lasted {}").format(i.lasted)
    )


CELLS = {
    "moment": moment,
    "status_badge": status_badge,
    "undelivered": undelivered,
    "next_attempt": next_attempt,
    "last_incident": last_incident,
}
