"""What every view of the admin website shares, reached from the request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse

from homeport.admin.api import Homeservers
from homeport.admin.cells import CELLS
from homeport.admin.delivery import DeliverySnapshot
from homeport.admin.directory import DirectoryLoginSnapshot
from homeport.admin.sessions import Login, PreLoginTokens, Session, SessionStore
from homeport.admin.throttle import Throttle
from homeport.capability import WebsitePages, templates_of
from homeport.clock import Clock
from homeport.config.deployment import Deployment

HERE = Path(__file__).parent
SESSION_SCOPE_KEY = "homeport_session"
NEW_SESSION_SCOPE_KEY = "homeport_new_session"
PRELOGIN_SCOPE_KEY = "homeport_prelogin"  # the login form's CSRF token, before any session


class Metrics:
    """Prometheus counters of the website's requests, in a registry of its own."""

    def __init__(self, waiting: Engine | None = None) -> None:
        """`waiting`: the store where the alerts service keeps the waiting destinations."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "homeport_admin_requests",
            "Requests to the admin website",
            ["route", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "homeport_admin_render_seconds",
            "Time to answer a page, Synapse calls included",
            ["route"],
            registry=self.registry,
        )
        self.delivery = DeliverySnapshot(self.registry, waiting)
        self.directory_login = DirectoryLoginSnapshot(self.registry)


class Templates:
    """Jinja2 with autoescaping on for every template; every page gets the session's basics."""

    def __init__(self, deployment: Deployment, pages: Sequence[WebsitePages] = ()) -> None:
        self._deployment = deployment
        self._tabs = [p for p in pages if p.shown(deployment)]  # after the website's own
        folders = [HERE / "templates", *(templates_of(p) for p in pages)]
        self._env = Environment(
            loader=FileSystemLoader(folders),
            autoescape=select_autoescape(default=True),
            auto_reload=False,  # package files: no need to look at them on every page
        )
        self._env.globals["cells"] = SimpleNamespace(**CELLS)

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        session: Session | None = request.scope.get(SESSION_SCOPE_KEY)
        html = self._env.get_template(template).render(
            request=request,
            session=session,
            homeservers=self._deployment.homeservers,
            tabs=self._tabs,
            current=session.current if session else None,
            csrf_token=session.csrf_token if session else request.scope.get(PRELOGIN_SCOPE_KEY, ""),
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def error(self, request: Request, status_code: int, message: str) -> HTMLResponse:
        return self.render(request, "error.html", status_code=status_code, message=message)


@dataclass
class Site:
    """The website's parts, built once by `create_app`."""

    deployment: Deployment
    api: Homeservers
    clock: Clock
    store: Engine | None
    pages: Sequence[WebsitePages]  # the capabilities' tabs
    sessions: SessionStore
    templates: Templates
    metrics: Metrics
    prelogin: PreLoginTokens
    # Login attempts per client address, failed ones per user name (throttle.py).
    logins_by_address: Throttle
    failures_by_user: Throttle

    def now_ms(self) -> int:
        return int(self.clock.time() * 1000)


def site_of(request: Request) -> Site:
    site: Site = request.app.state.site
    return site


def session_or_none(request: Request) -> Session | None:
    """The session, on the pages reachable before login (where there may be none)."""
    session: Session | None = request.scope.get(SESSION_SCOPE_KEY)
    return session


def session_of(request: Request) -> Session:
    session: Session = request.scope[SESSION_SCOPE_KEY]
    return session


def current_login(request: Request) -> tuple[str, Login]:
    """The homeserver the pages are scoped to, and the admin's login there."""
    session = session_of(request)
    name = session.current
    if name is None or name not in session.logins:
        name = next(iter(session.logins))
        session.current = name
    return name, session.logins[name]


async def log_out_ended(site: Site) -> None:
    """Log out the Matrix tokens of every session that ended, however it ended."""
    for session in site.sessions.drain_ended():
        for name, login in session.logins.items():
            await site.api.logout(name, login.access_token)
