"""The Federation tab's cells as HTML, made in Python: a page has 25 rows of them, and
Jinja macros cost several times a function's call. Each value is escaped (Markup)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import quote

from markupsafe import Markup, escape

from homeport.admin.present import When
from homeport.admin.rows import DestinationRow

NONE = Markup('<span class="none">–</span>')


def moment(w: When | None) -> Markup:
    """A moment as absolute time with zone and as relative words."""
    if not w:
        return NONE
    return Markup(_time_tag(w.iso, w.absolute) + _relative_tag(w.relative))  # noqa: S704


# A page shows a hundred moments, mostly the same ones as on its last refresh, and
# their relative words come from a small vocabulary: each escaped once.
@lru_cache(maxsize=4096)
def _time_tag(iso: str, absolute: str) -> str:
    shown = escape(absolute)
    return f'<time datetime="{escape(iso)}" title="{shown}">{shown}</time>'


@lru_cache(maxsize=1024)
def _relative_tag(relative: str) -> str:
    return f' <span class="relative">({escape(relative)})</span>'


def status_badge(status: str) -> Markup:
    slug = escape(status.lower().replace(" ", "-"))
    return Markup(f'<span class="status status-{slug}">{escape(status)}</span>')  # noqa: S704


def undelivered(d: DestinationRow) -> Markup:
    if not d.undelivered_since:
        return NONE
    count = int(d.waiting_rooms)
    rooms = "room" if count == 1 else "rooms"
    return Markup(  # noqa: S704 - a moment made here, a number, a fixed word
        f'{moment(d.undelivered_since)} <span class="rooms">in {count} {rooms}</span>'
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
    what = escape(i.what)
    if i.open:
        return Markup(  # noqa: S704 - every value escaped or made here
            f'<span class="status status-failing">{what}</span> since {moment(i.started)}'
        )
    return Markup(  # noqa: S704 - every value escaped or made here
        f"{what}, ended {moment(i.ended)}, lasted {escape(i.lasted)}"
    )


def destination_rows(rows: Sequence[DestinationRow], incidents_kept: bool) -> Markup:
    """The Federation tab's table rows, one f-string each: a Jinja loop calling a cell
    function per column cost most of a page's rendering."""
    out = []
    for d in rows:
        # As Jinja's `urlencode` filter quotes a string: "/" kept, then escaped.
        link = escape(quote(d.destination, safe="/"))
        ordering = "–" if d.stream_ordering is None else int(d.stream_ordering)
        incident = f'<td class="incident">{last_incident(d)}</td>' if incidents_kept else ""
        out.append(
            f'<tr><td><a href="/federation/{link}">{escape(d.destination)}</a></td>'
            f"<td>{status_badge(d.status)}</td>"
            f'<td class="undelivered">{undelivered(d)}</td>'
            f"<td>{moment(d.first_failed)}</td><td>{moment(d.last_failed)}</td>"
            f"<td>{next_attempt(d)}</td>"
            f'<td class="num">{int(d.rooms)}</td><td class="num">{ordering}</td>'
            f"{incident}</tr>\n"
        )
    return Markup("".join(out))  # noqa: S704 - every value escaped or a number


CELLS = {
    "moment": moment,
    "status_badge": status_badge,
    "undelivered": undelivered,
    "next_attempt": next_attempt,
}
