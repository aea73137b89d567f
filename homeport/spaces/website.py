"""The Internal spaces tab: each internal space with its rooms, what in them the policy
does not hold (drift), and the remedy for a room that federates.

Read as the logged-in admin from the Homeport module's report; the remedy
(`spaces.replace`) runs as that admin too, so Synapse authorises every step, and is
recorded in Homeport's store like the website's other actions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from homeport.admin.actions import Action, record_action
from homeport.admin.site import current_login, site_of
from homeport.config.policy import internal_space
from homeport.policy.lint.findings import Finding
from homeport.spaces.replace import replace_room
from homeport.synapse.api import SynapseApiError
from homeport.synapse.models import InternalRoom, InternalSpacesReport
from homeport.verify.internal_spaces import drift

MAX_FIELD = 255
# Each drift finding in a word or two, in the row of its room (the details open below).
PROBLEM_WORDS = {
    "internal-room-federates": "federates",
    "internal-room-remote-members": "holds users of other servers",
    "internal-room-exposed": "open to anyone",
    "internal-room-unseen": "this server is not in it",
    "internal-space-in-federated-space": "listed in a space that federates",
}


@dataclass(frozen=True)
class Row:
    """One room of an internal space, indented under the space that holds it."""

    room: InternalRoom
    depth: int
    parent: str | None  # the internal space it is shown under
    problems: tuple[Finding, ...]

    @property
    def replaceable(self) -> bool:
        return self.room.known and self.room.federates and self.parent is not None


@dataclass(frozen=True)
class Space:
    reference: str  # as homeport.yaml names it, made whole
    room_id: str | None  # None: no room has that alias yet
    rows: tuple[Row, ...]


def _tree(report: InternalSpacesReport, findings: list[Finding]) -> list[Space]:
    rooms = {room.room_id: room for room in report.rooms}
    children: dict[str, list[str]] = {}
    for room in report.rooms:
        for parent in room.parents:
            children.setdefault(parent, []).append(room.room_id)

    def rows(room_id: str, parent: str | None, depth: int, seen: set[str]) -> list[Row]:
        room = rooms.get(room_id)
        if room is None or room_id in seen:
            return []
        seen.add(room_id)
        problems = tuple(f for f in findings if room_id in f.message)
        found = [Row(room, depth, parent, problems)]
        for child in sorted(children.get(room_id, [])):
            found += rows(child, room_id, depth + 1, seen)
        return found

    return [
        Space(ref, room_id, tuple(rows(room_id, None, 0, set()) if room_id else ()))
        for ref, room_id in report.spaces.items()
    ]


async def spaces(request: Request) -> Response:
    site = site_of(request)
    name, login = current_login(request)
    hs = site.deployment.homeservers[name]
    if not hs.policy.rooms.internal_spaces:
        return site.templates.error(
            request,
            404,
            f"{name} has no internal spaces: list them under policy.rooms.internal_spaces "
            "in homeport.yaml.",
        )
    report = await site.api.admin(name, login.access_token).internal_spaces()
    findings = drift(site.deployment, name, report)
    return site.templates.render(
        request,
        "spaces.html",
        spaces=_tree(report, findings),
        missing=[f for f in findings if f.id == "internal-space-missing"],
        drift=len([f for f in findings if f.id != "internal-space-missing"]),
        notice=request.query_params.get("done", "")[:600],
        problem_words=PROBLEM_WORDS,
    )


async def replace(request: Request) -> Response:
    """Replace a federated room of an internal space with a non-federated one."""
    site = site_of(request)
    name, login = current_login(request)
    form = await request.form()
    room_id = str(form.get("room", "")).strip()[:MAX_FIELD]
    parent = str(form.get("parent", "")).strip()[:MAX_FIELD]
    if form.get("understood") != "yes":
        return site.templates.error(
            request, 400, "Tick the box: users of other servers stay in the old room."
        )
    hs = site.deployment.homeservers[name]
    refs = {internal_space(r, hs.server_name) for r in hs.policy.rooms.internal_spaces}
    report = await site.api.admin(name, login.access_token).internal_spaces()
    room = next((r for r in report.rooms if r.room_id == room_id), None)
    if not refs or room is None or parent not in room.parents:
        return site.templates.error(
            request, 400, "That room is not in an internal space of this homeserver."
        )
    if not (room.known and room.federates):
        return site.templates.error(request, 400, "That room does not federate: nothing to do.")
    try:
        done = await replace_room(
            site.api.spaces(name, login.access_token), room_id, parent, login.user_id
        )
    except SynapseApiError as error:
        outcome = f"failed: {error}"
        message = f"Not replaced: {error}"
    else:
        outcome = f"replaced by {done.new_room}" + (
            "; " + "; ".join(done.problems) if done.problems else ""
        )
        message = (
            f"{room_id} is replaced by {done.new_room}: {len(done.moved)} member(s) of "
            f"{hs.server_name} moved, {len(done.left)} of other servers stay in the old room"
            + ("" if done.tombstoned else " (the old room could not be tombstoned)")
            + ("; " + "; ".join(done.problems) if done.problems else "")
        )
    if site.store is not None:
        action = Action(site.now_ms(), name, login.user_id, "spaces_replace", room_id, outcome)
        await asyncio.to_thread(record_action, site.store, action)
    return RedirectResponse(f"/spaces?done={quote(message, safe='')}", status_code=303)


ROUTES = [
    Route("/spaces", spaces, name="spaces"),
    Route("/spaces/replace", replace, methods=["POST"], name="spaces_replace"),
]
