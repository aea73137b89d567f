"""The Rooms tab: the rooms a homeserver knows, where each was created, who is in it,
and the capabilities' columns (whether its audit bot records it, with the button to
start or stop)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from homeport.admin.site import Site, current_login, site_of
from homeport.admin.views.federation import offset
from homeport.capability import imported
from homeport.policy.effective import effective_whitelist

PAGE_SIZE = 50


@dataclass(frozen=True)
class Column:
    """A capability's column on this page: its header, its cell's template, the rooms it marks."""

    header: str
    cell: str
    marked: set[str]


async def columns(site: Site, name: str) -> list[Column]:
    """The columns the capabilities add for homeserver `name` (those that apply to it)."""
    declared = [(page.module, page.rooms_column) for page in site.pages if page.rooms_column]
    marks = await asyncio.gather(*(imported(f"{m}:{c.marks}")(site, name) for m, c in declared))
    return [
        Column(c.header, c.cell, marked)
        for (_, c), marked in zip(declared, marks, strict=True)
        if marked is not None
    ]


async def rooms(request: Request) -> Response:
    site = site_of(request)
    name, login = current_login(request)
    params = request.query_params
    search = params.get("q", "").strip()[:200]
    federated_only = params.get("federated") == "1"
    elsewhere_only = params.get("elsewhere") == "1"
    start = offset(request)
    admin = site.api.admin(name, login.access_token)
    allowed = effective_whitelist(site.deployment, name)
    if allowed is None:
        page, mixed = await admin.rooms(start, PAGE_SIZE, search), None
    else:
        page, report = await asyncio.gather(
            admin.rooms(start, PAGE_SIZE, search), admin.mixed_rooms(allowed)
        )
        mixed = {room.room_id: room.servers for room in report.rooms}
    own = site.deployment.homeservers[name].server_name
    # Synapse's rooms admin API has no such filters: they apply to this page.
    rows = [
        room
        for room in page.rooms
        if (room.federatable or not federated_only)
        and (room.creator_server != own or not elsewhere_only)
    ]
    return site.templates.render(
        request,
        "rooms.html",
        columns=await columns(site, name),
        rooms=rows,
        total=page.total,
        start=start,
        next_start=page.next_batch,
        prev_start=max(0, start - PAGE_SIZE) if start > 0 else None,
        search=search,
        federated_only=federated_only,
        elsewhere_only=elsewhere_only,
        own=own,
        mixed=mixed,  # room -> servers its whitelist shuts out; None: it has no whitelist
    )
