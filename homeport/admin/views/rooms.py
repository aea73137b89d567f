"""The Rooms tab: the rooms a homeserver knows, where each was created, who is in it,
and whether its audit bot records it (with the button to start or stop)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from homeport.admin.rows import room_row
from homeport.admin.site import current_login, site_of
from homeport.admin.views.federation import offset
from homeport.audit.store import audited_rooms

PAGE_SIZE = 50


async def rooms(request: Request) -> Response:
    site = site_of(request)
    name, login = current_login(request)
    params = request.query_params
    search = params.get("q", "").strip()[:200]
    federated_only = params.get("federated") == "1"
    elsewhere_only = params.get("elsewhere") == "1"
    start = offset(request)
    page = await site.api.admin(name, login.access_token).rooms(start, PAGE_SIZE, search)
    own = site.deployment.homeservers[name].server_name
    # Synapse's rooms admin API has no such filters: they apply to this page.
    rows = [
        row
        for row in map(room_row, page.rooms)
        if (row.federated or not federated_only)
        and (row.creator_server != own or not elsewhere_only)
    ]
    bot = site.deployment.homeservers[name].audit_bot is not None and site.store is not None
    audited: set[str] = set()
    if bot and site.store is not None:
        found = await asyncio.to_thread(audited_rooms, site.store, name)
        audited = {room.room_id for room in found}
    return site.templates.render(
        request,
        "rooms.html",
        bot=bot,
        audited=audited,
        rooms=rows,
        total=page.total,
        start=start,
        next_start=page.next_batch,
        prev_start=max(0, start - PAGE_SIZE) if start > 0 else None,
        search=search,
        federated_only=federated_only,
        elsewhere_only=elsewhere_only,
        own=own,
    )
