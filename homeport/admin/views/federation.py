"""The Federation tab: every destination, one destination, resetting its connection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, get_args
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from homeport.admin.actions import Action, actions_since, last_action, record_action
from homeport.admin.api import HomeserverAdmin
from homeport.admin.cells import destination_rows
from homeport.admin.present import when
from homeport.admin.rows import destination_row
from homeport.admin.site import Site, current_login, site_of
from homeport.admin.timeline import WINDOW_MS, Timeline, timeline
from homeport.alerts import store as incidents
from homeport.policy.backoff import NOT_DELIVERING_AFTER_S, spoken
from homeport.policy.effective import effective_whitelist
from homeport.synapse.admin_api import (
    DestinationListing,
    DestinationOrder,
    DestinationQuery,
    Direction,
)
from homeport.synapse.models import Room
from homeport.verify.report import latest_report

PAGE_SIZE = 25


@dataclass(frozen=True)
class Column:
    """A column of the destinations table, which the template's heading row iterates.

    `order_by`: what its heading sorts by (None: it does not sort); `first`: the
    direction its heading asks for when the table is sorted by another column."""

    label: str
    order_by: DestinationOrder | None = None
    first: Direction = "f"


COLUMNS = (
    Column("Destination", "destination"),
    Column("Status"),
    Column("Undelivered since", "undelivered_since"),
    Column("First failed attempt", "failure_ts"),
    Column("Last failed attempt", "retry_last_ts"),
    Column("Next attempt", "next_attempt"),
    Column("Federated rooms"),
    Column("Last successful stream ordering", "last_successful_stream_ordering"),
)
# Shown where the alerts service keeps incidents (`alerts:`).
LAST_INCIDENT = Column("Last incident")
# The alerts service's waiting destinations order the tab while they are this fresh.
WAITING_FRESH_MS = 60_000
# What `order_by` may ask for: every order, shown as a column or not (`retry_interval`).
ORDERS: tuple[DestinationOrder, ...] = get_args(DestinationOrder)


def offset(request: Request) -> int:
    """The `from` query parameter as a non-negative page offset (0 when absent or bad)."""
    try:
        return max(0, int(request.query_params.get("from", "0")))
    except ValueError:
        return 0


def _order(value: str | None) -> DestinationOrder:
    for key in ORDERS:
        if key == value:
            return key
    return "destination"


def _incidents_kept(site: Site) -> bool:
    return site.store is not None and site.deployment.alerts is not None


async def _listing(
    site: Site,
    name: str,
    admin: HomeserverAdmin,
    query: DestinationQuery,
    also: tuple[str, ...],
) -> DestinationListing:
    """The page: "undelivered since" read from the alerts service's index of the
    destinations that wait (as of its last check, at most a minute old), then those with
    nothing waiting by name; every other order, and a stale index, as the module pages."""
    engine = site.store
    if query.order_by == "undelivered_since" and engine is not None and _incidents_kept(site):
        descending = query.direction == "b"
        indexed = site.metrics.delivery.waiting_page(
            name, query.start, query.limit, query.search, descending
        )
        if indexed is None:  # more than the snapshot holds: the store's index
            fresh_since = site.now_ms() - WAITING_FRESH_MS
            indexed = await asyncio.to_thread(
                incidents.waiting_page, engine, name, query, fresh_since
            )
        if indexed is not None:
            names, waiting = indexed
            rest_from = max(0, query.start - waiting)
            return await admin.destinations_given(query, names, rest_from, also)
    return await admin.destinations_with_counts(query, also=also)


def _is_partial(request: Request) -> bool:
    """An htmx swap of the table, not a page load (a history restore wants the page)."""
    return request.headers.get("hx-request") == "true" and not request.headers.get(
        "hx-history-restore-request"
    )


async def federation(request: Request) -> Response:
    site = site_of(request)
    name, login = current_login(request)
    admin = site.api.admin(name, login.access_token)
    params = request.query_params
    order_by = _order(params.get("order_by"))
    direction: Direction = "b" if params.get("dir") == "b" else "f"
    search = params.get("q", "").strip()[:200]
    start = offset(request)
    partial = _is_partial(request)
    # Servers the policy allows that share no room yet: their counts come with the
    # page's, so that the page costs Synapse one request.
    allowed = None if partial else effective_whitelist(site.deployment, name)
    own = site.deployment.homeservers[name].server_name
    candidates = tuple(server for server in allowed or [] if server != own)
    query = DestinationQuery(start, PAGE_SIZE, order_by, direction, search)
    delivery = site.metrics.delivery
    await delivery.refresh(site.api, list(site.deployment.homeservers), site.clock)
    listing = await _listing(site, name, admin, query, candidates)
    page, counts = listing.page, listing.room_counts
    now = site.now_ms()
    kept = _incidents_kept(site)
    last: dict[str, Any] = {}
    if kept:
        shown = [d.destination for d in page.destinations]
        last = await delivery.last_incidents(name, shown, site.clock)
    late, late_total = delivery.late(name, now, 5)
    rows = [
        destination_row(
            d,
            counts.get(d.destination, 0),
            listing.undelivered.get(d.destination),
            now,
            last.get(d.destination),
        )
        for d in page.destinations
    ]
    context: dict[str, Any] = {
        "destinations": rows,
        "rows": destination_rows(rows, kept),
        "not_delivering": [(u.destination, when(u.since_ms, now)) for u in late],
        "not_delivering_total": late_total,
        "threshold": spoken(NOT_DELIVERING_AFTER_S),
        "total": page.total,
        "start": start,
        "page_size": PAGE_SIZE,
        "next_start": page.next_token,
        "prev_start": max(0, start - PAGE_SIZE) if start > 0 else None,
        "order_by": order_by,
        "direction": direction,
        "search": search,
        "columns": (*COLUMNS, LAST_INCIDENT) if kept else COLUMNS,
        "incidents_kept": kept,
    }
    if partial:
        response = site.templates.render(request, "_destinations.html", **context)
    else:
        quiet = [server for server in candidates if counts.get(server, 0) == 0]
        response = site.templates.render(
            request, "federation.html", whitelist=allowed, quiet=quiet, **context
        )
    response.headers["Vary"] = "HX-Request"
    return response


async def destination(request: Request) -> Response:
    site = site_of(request)
    name, login = current_login(request)
    admin = site.api.admin(name, login.access_token)
    server = request.path_params["destination"]
    row = None if server in (".", "..") else await admin.destination(server)
    now = site.now_ms()
    history = None
    if site.store is not None and _incidents_kept(site) and server not in (".", ".."):
        history = await asyncio.to_thread(_history, site, name, server, now)
    peer = next(
        (n for n, hs in site.deployment.homeservers.items() if hs.server_name == server), None
    )
    # Synapse keeps a row only once it sent something (or failed to): a sibling that
    # shares no room yet, or one only Homeport's own checks found silent, has none.
    if row is None and peer is None and not (history and history.lines):
        return site.templates.error(request, 404, f"{name} has no destination {server!r}.")
    start = offset(request)
    facts, rooms, next_start = None, [], None
    if row is not None:
        listing, (_, undelivered) = await asyncio.gather(
            admin.destination_rooms(server, start, PAGE_SIZE), admin.facts([server])
        )
        details = await asyncio.gather(*(admin.room(entry.room_id) for entry in listing.rooms))
        rooms = [
            room if room is not None else Room.unknown(entry.room_id)
            for entry, room in zip(listing.rooms, details, strict=True)
        ]
        facts = destination_row(row, listing.total, undelivered.get(server), now)
        next_start = listing.next_token
    allowed = effective_whitelist(site.deployment, name)
    report, action = None, None
    if site.store is not None:
        report = await asyncio.to_thread(latest_report, site.store)
        action = await asyncio.to_thread(last_action, site.store, name, server)
    return site.templates.render(
        request,
        "destination.html",
        destination=server,
        facts=facts,
        threshold=spoken(NOT_DELIVERING_AFTER_S),
        rooms=rooms,
        start=start,
        page_size=PAGE_SIZE,
        next_start=next_start,
        whitelisted=allowed is None or server in allowed,
        whitelist_open=allowed is None,
        peer=peer,
        checks=report.between(name, peer) if report is not None and peer else [],
        verified=when(int((report.finished_at or 0) * 1000), now) if report else None,
        last_action=action,
        last_action_when=when(action.ts, now) if action else None,
        reset_done=request.query_params.get("reset") == "1",
        history=history,
    )


def _history(site: Site, name: str, server: str, now: int) -> Timeline:
    """The destination's incidents of the last 30 days, and who reset it meanwhile."""
    assert site.store is not None
    since = now - WINDOW_MS
    found = incidents.incidents_since(site.store, name, server, since)
    return timeline(found, actions_since(site.store, name, server, since), now)


async def reset(request: Request) -> Response:
    site = site_of(request)
    name, login = current_login(request)
    server = request.path_params["destination"]
    if server in (".", ".."):
        return site.templates.error(request, 404, "No such server.")
    done = await site.api.admin(name, login.access_token).reset_connection(server)
    if site.store is not None:
        action = Action(
            site.now_ms(),
            name,
            login.user_id,
            "reset_connection",
            server,
            "done" if done else "not needed",
        )
        await asyncio.to_thread(record_action, site.store, action)
    if not done:
        return site.templates.error(
            request, 400, f"{server} needs no reset: Synapse is not backing off from it."
        )
    return RedirectResponse(f"/federation/{quote(server, safe='')}?reset=1", status_code=303)
