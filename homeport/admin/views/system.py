"""What answers without a login: health, metrics, the favicon; and the way in."""

from __future__ import annotations

from prometheus_client import generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from homeport.admin.site import site_of


async def home(request: Request) -> Response:
    return RedirectResponse("/federation", status_code=303)


async def favicon(request: Request) -> Response:
    return Response(status_code=204)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    site = site_of(request)
    await site.metrics.delivery.refresh(site.api, list(site.deployment.homeservers), site.clock)
    sync = site.deployment.group_sync
    if sync is not None and sync.login:
        await site.metrics.directory_login.refresh(site.api, sync.homeserver, site.clock)
    registry = site.metrics.registry
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")
