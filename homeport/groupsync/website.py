"""Group sync's tab of the admin website: mappings, the service's state, recent runs,
changes and errors.

Read-only: group sync follows the directory, and the directory is where people
are added or removed. The page belongs to the homeserver group sync manages.
"""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from homeport.admin.site import current_login, site_of
from homeport.clock import iso
from homeport.groupsync.overview import overview
from homeport.synapse.api import SynapseApiError


async def groupsync(request: Request) -> Response:
    site = site_of(request)
    name, login = current_login(request)
    sync = site.deployment.group_sync
    if sync is None:
        return site.templates.error(
            request, 404, "Group sync is not configured: add `group_sync:` to homeport.yaml."
        )
    if sync.homeserver != name:
        return site.templates.error(
            request,
            404,
            f"Group sync manages the spaces of {sync.homeserver}; switch to it to see them.",
        )
    if site.store is None:
        return site.templates.error(request, 503, "The website runs without Homeport's store.")
    view = await overview(site.deployment, site.store)
    login_state = None
    if sync.login:
        try:
            login_state = await site.api.admin(name, login.access_token).directory_login()
        except (SynapseApiError, httpx.HTTPError):
            login_state = None  # the page still shows the rest
    return site.templates.render(
        request, "groupsync.html", view=view, login_state=login_state, iso=iso
    )


ROUTES = [Route("/groupsync", groupsync, name="groupsync")]
