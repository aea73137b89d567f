"""The routes and the Rooms column of a tab that is no part of Homeport."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from homeport.admin.site import Site, current_login, site_of

MARKED: set[str] = set()  # the rooms the column marks on `internal`, set by the test


async def extra(request: Request) -> Response:
    site = site_of(request)
    name, _login = current_login(request)
    return site.templates.render(request, "extra.html", name=name)


async def marks(site: Site, name: str) -> set[str] | None:
    """`MARKED` on `internal`; no column on any other homeserver."""
    return set(MARKED) if name == "internal" else None


ROUTES = [Route("/extra", extra, name="extra")]
