"""The audit bot's tab of the admin website: audited rooms, adding and removing,
searching what the bot recorded; and its column of the Rooms table.

Adding and removing go through the Homeport module as the logged-in admin
(Synapse checks that they are a server admin), so a room created elsewhere
is refused here exactly as from the command line. Records come from
Homeport's store, searched and paged there (newest first, by `seq`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from homeport.admin.actions import Action, record_action
from homeport.admin.sessions import Login
from homeport.admin.site import Site, current_login, site_of
from homeport.audit import store
from homeport.audit.export import parse_time
from homeport.audit.manage import confirmed
from homeport.clock import iso
from homeport.synapse.api import SynapseApiError
from homeport.synapse_module.contract import INTEGRITY_EVENT, NO_INVITER, NOT_LOCAL

PAGE_SIZE = 50
CONFIRM_S = 10.0
RECENT_CHANGES = 20  # the Audit page lists the newest; the store keeps all
INTEGRITY = store.Filters(event_type=INTEGRITY_EVENT)
MAX_FIELD = 255


def _field(request: Request, key: str) -> str:
    return request.query_params.get(key, "").strip()[:MAX_FIELD]


@dataclass(frozen=True)
class _Scope:
    """What an Audit view works on: the current homeserver, which has an audit bot, the
    admin's login there, and the store holding the bot's records."""

    site: Site
    name: str
    login: Login
    engine: Engine


def _with_bot(
    view: Callable[[Request, _Scope], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """The view, for a homeserver with an audit bot on a website with a store; else an
    error page saying which is missing."""

    async def page(request: Request) -> Response:
        site = site_of(request)
        name, login = current_login(request)
        if site.deployment.homeservers[name].audit_bot is None:
            return site.templates.error(
                request, 404, f"{name} has no audit bot: add `audit:` to it in homeport.yaml."
            )
        if site.store is None:
            return site.templates.error(request, 503, "The website runs without Homeport's store.")
        return await view(request, _Scope(site, name, login, site.store))

    return page


@_with_bot
async def audit(request: Request, scope: _Scope) -> Response:
    site, name, engine = scope.site, scope.name, scope.engine
    filters_text = {k: _field(request, k) for k in ("room", "sender", "text", "since", "until")}
    problem = ""
    try:
        filters = store.Filters(
            room_id=filters_text["room"] or None,
            sender=filters_text["sender"] or None,
            text=filters_text["text"] or None,
            since_ms=parse_time(filters_text["since"]) if filters_text["since"] else None,
            until_ms=parse_time(filters_text["until"]) if filters_text["until"] else None,
        )
    except ValueError as error:
        problem, filters = str(error), store.Filters()
    before_text = request.query_params.get("before", "")
    before = int(before_text) if before_text.isascii() and before_text.isdigit() else None
    rooms, changes, events, integrity = await asyncio.gather(
        asyncio.to_thread(store.audited_rooms, engine, name),
        asyncio.to_thread(store.room_changes, engine, name, None, RECENT_CHANGES),
        asyncio.to_thread(store.search, engine, name, filters, before, PAGE_SIZE),
        asyncio.to_thread(store.search, engine, name, INTEGRITY, None, RECENT_CHANGES),
    )
    older = None
    if len(events) == PAGE_SIZE:
        older = "/audit?" + urlencode({**filters_text, "before": events[-1].seq})
    return site.templates.render(
        request,
        "audit.html",
        bot=site.deployment.homeservers[name].audit_user_id,
        rooms=rooms,
        changes=changes,
        events=events,
        integrity=integrity,
        filters=filters_text,
        problem=problem,
        older=older,
        searched=any(filters_text.values()) or before is not None,
        iso=iso,
        notice=request.query_params.get("done", ""),
    )


@_with_bot
async def event(request: Request, scope: _Scope) -> Response:
    site = scope.site
    event_id = request.path_params["event_id"][:MAX_FIELD]
    found = await asyncio.to_thread(store.event, scope.engine, scope.name, event_id)
    if found is None:
        return site.templates.error(request, 404, "No such recorded event.")
    return site.templates.render(
        request,
        "audit_event.html",
        event=found,
        iso=iso,
        pretty=json.dumps(found.as_json(), indent=2, ensure_ascii=False),
    )


async def _change(request: Request, scope: _Scope, add: bool) -> Response:
    site, name, login = scope.site, scope.name, scope.login
    form = await request.form()
    room = str(form.get("room", "")).strip()[:MAX_FIELD]
    if not room.startswith(("!", "#")):
        return site.templates.error(request, 400, "Give a room ID (!...) or an alias (#...).")
    admin = site.api.admin(name, login.access_token)
    try:
        done = await (admin.audit_add if add else admin.audit_remove)(room, login.user_id)
    except SynapseApiError as error:
        if error.errcode not in (NOT_LOCAL, NO_INVITER) and error.status != 404:
            raise
        outcome = "refused"
        message = f"Refused, nothing changed: {error.message}"
    else:
        room, message = done.room_id, ""
        # The bot records the change from Synapse's transaction: wait for it, so that the
        # page shows the room (or its absence), or say that the bot is behind.
        recorded = await confirmed(scope.engine, name, room, add, timeout=CONFIRM_S)
        outcome = "done" if recorded else "done, not yet recorded by the bot"
    action = Action(
        site.now_ms(), name, login.user_id, "audit_add" if add else "audit_remove", room, outcome
    )
    await asyncio.to_thread(record_action, scope.engine, action)
    if message:
        return site.templates.error(request, 400, message)
    verb = ("added" if add else "removed") if outcome == "done" else "pending"
    return RedirectResponse(f"/audit?done={verb}:{quote(room, safe='')}", status_code=303)


@_with_bot
async def add(request: Request, scope: _Scope) -> Response:
    return await _change(request, scope, add=True)


@_with_bot
async def remove(request: Request, scope: _Scope) -> Response:
    return await _change(request, scope, add=False)


async def recorded_rooms(site: Site, name: str) -> set[str] | None:
    """The Rooms table's "Recorded" column: the rooms homeserver `name`'s bot records;
    None (no column) without a bot or a store."""
    if site.deployment.homeservers[name].audit_bot is None or site.store is None:
        return None
    return {room.room_id for room in await asyncio.to_thread(store.audited_rooms, site.store, name)}


ROUTES = [
    Route("/audit", audit, name="audit"),
    Route("/audit/add", add, methods=["POST"], name="audit_add"),
    Route("/audit/remove", remove, methods=["POST"], name="audit_remove"),
    Route("/audit/event/{event_id:path}", event, name="audit_event"),
]
