"""The admin website: `create_app(deployment, api, clock)` builds it, ready to serve.

Starlette with Jinja2 templates (autoescaped) and htmx for partial updates.
Every page is scoped to one homeserver of the deployment and needs a login
as a server admin there; every state-changing request needs the session's
CSRF token. Synapse's admin API does the paging, sorting and searching. The
homeservers are injected (`api`), so tests can build the app in process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from homeport.admin.api import Homeservers
from homeport.admin.middleware import (
    CSRFMiddleware,
    MetricsMiddleware,
    SecurityHeadersMiddleware,
    SessionMiddleware,
)
from homeport.admin.sessions import PreLoginTokens, SessionStore
from homeport.admin.site import (
    HERE,
    Metrics,
    Site,
    Templates,
    log_out_ended,
    session_or_none,
    site_of,
)
from homeport.admin.throttle import (
    ADDRESS_REFILL_SECONDS,
    FAILURES_PER_USER,
    LOGINS_PER_ADDRESS,
    USER_REFILL_SECONDS,
    Throttle,
)
from homeport.admin.views import auth, federation, policy, rooms, system
from homeport.capability import WebsitePages, imported
from homeport.clock import Clock, SystemClock
from homeport.config.deployment import Deployment
from homeport.synapse.api import SynapseApiError


async def synapse_failed(request: Request, error: Exception) -> Response:
    """Synapse answered with an error, or not at all: say so, as a 502.

    A 401 (the token is gone) or 403 (no longer a server admin) ends the
    session there and then, and logs its tokens out.
    """
    site = site_of(request)
    session = session_or_none(request)
    if (
        session is not None
        and isinstance(error, SynapseApiError)
        and (error.status == 401 or (error.status == 403 and error.errcode == "M_FORBIDDEN"))
    ):
        site.sessions.end(session, "revoked")
        await log_out_ended(site)
        return RedirectResponse("/login?revoked=1", status_code=303)
    return site.templates.error(request, 502, f"The homeserver answered with an error: {error}")


def create_app(
    deployment: Deployment,
    api: Homeservers,
    clock: Clock | None = None,
    store: Engine | None = None,
    pages: Sequence[WebsitePages] = (),
) -> Starlette:
    """The website for `deployment`, talking to the homeservers through `api`, with the
    tabs of the capabilities that add one (`pages`, from the registry).

    `store` is Homeport's store (verify reports, recorded actions); without
    one, the pages leave those parts out. The caller owns `api` and `store`.
    """
    assert deployment.admin is not None, "the deployment has no admin section"
    clock = clock or SystemClock()
    site = Site(
        deployment=deployment,
        api=api,
        clock=clock,
        store=store,
        pages=pages,
        sessions=SessionStore(
            deployment.admin.session_idle_minutes * 60,
            deployment.admin.session_lifetime_hours * 3600,
            clock.monotonic,
        ),
        templates=Templates(deployment, pages),
        metrics=Metrics(store if deployment.alerts is not None else None),
        prelogin=PreLoginTokens(),
        logins_by_address=Throttle(LOGINS_PER_ADDRESS, ADDRESS_REFILL_SECONDS, clock.monotonic),
        failures_by_user=Throttle(FAILURES_PER_USER, USER_REFILL_SECONDS, clock.monotonic),
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        # Sessions live in memory and die with the website: so do their tokens.
        for session in site.sessions.all():
            site.sessions.end(session, "website stopped")
        await log_out_ended(site)

    app = Starlette(
        routes=[
            Route("/", system.home, name="home"),
            Route("/health", system.health, name="health"),
            Route("/favicon.ico", system.favicon, name="favicon"),
            Route("/metrics", system.metrics, name="metrics"),
            Route("/login", auth.login_form, methods=["GET"], name="login"),
            Route("/login", auth.login, methods=["POST"], name="login"),
            Route("/logout", auth.logout, methods=["POST"], name="logout"),
            Route("/switch", auth.switch, methods=["POST"], name="switch"),
            Route("/federation", federation.federation, name="federation"),
            Route(
                "/federation/{destination}/reset",
                federation.reset,
                methods=["POST"],
                name="reset",
            ),
            Route("/federation/{destination}", federation.destination, name="destination"),
            Route("/rooms", rooms.rooms, name="rooms"),
            Route("/policy", policy.policy, name="policy"),
            *(route for page in pages for route in imported(f"{page.module}:ROUTES")),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[
            Middleware(MetricsMiddleware, site=site),
            Middleware(SecurityHeadersMiddleware),
            Middleware(SessionMiddleware, site=site),
            Middleware(CSRFMiddleware, site=site),
        ],
        exception_handlers={SynapseApiError: synapse_failed, httpx.HTTPError: synapse_failed},
        lifespan=lifespan,
    )
    app.state.site = site
    return app
