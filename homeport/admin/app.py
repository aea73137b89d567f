"""The admin website: Starlette, Jinja2 templates (autoescaped), htmx for partial updates.

Every page is scoped to one homeserver of the deployment and needs a login
as a server admin there; every state-changing request needs the session's
CSRF token. Synapse's admin API does the paging, sorting and searching.
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from homeport.admin.present import (
    can_reset,
    destination_status,
    next_attempt_ms,
    policy_sentences,
    server_of,
    when,
)
from homeport.admin.sessions import Login, Session, SessionStore
from homeport.admin.synapse import AdminApi, NotAdminError
from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.policy.effective import effective_whitelist
from homeport.policy.lint import lint
from homeport.synapse.api import SynapseApiError

HERE = Path(__file__).parent
COOKIE = "homeport_session"
PAGE_SIZE = 25
SORTABLE = {
    "destination": "Destination",
    "retry_last_ts": "Last failed attempt",
    "retry_interval": "Retry interval",
    "failure_ts": "First failed attempt",
    "last_successful_stream_ordering": "Last successful stream ordering",
}

Handler = Callable[[Request], Awaitable[Response]]


def offset(request: Request) -> int:
    """The `from` query parameter as a non-negative page offset (0 when absent or bad)."""
    try:
        return max(0, int(request.query_params.get("from", "0")))
    except ValueError:
        return 0


def safe_next(target: str | None) -> str:
    """Only a path of this site: no scheme, no host, no `//` or backslash tricks."""
    if not target:
        return "/federation"
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 for c in target)
    ):
        return "/federation"
    return target


class AdminSite:
    def __init__(
        self,
        deployment: Deployment,
        ssl_context: ssl.SSLContext,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        assert deployment.admin is not None
        self.deployment = deployment
        self.layout = DeploymentLayout(deployment.data_dir)
        self.api = AdminApi(deployment, ssl_context)
        self.sessions = SessionStore(deployment.admin.session_idle_minutes * 60)
        self.now_ms = now_ms
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
        )
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "homeport_admin_requests",
            "Requests to the admin website",
            ["route", "status"],
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "homeport_admin_render_seconds",
            "Time to answer a page, Synapse calls included",
            ["route"],
            registry=self.registry,
        )

    # Plumbing -----------------------------------------------------------------

    def render(
        self, request: Request, template: str, status_code: int = 200, **context: Any
    ) -> Response:
        session: Session | None = request.scope.get("homeport_session")
        html = self.env.get_template(template).render(
            request=request,
            session=session,
            homeservers=self.deployment.homeservers,
            current=session.current if session else None,
            csrf_token=session.csrf_token if session else "",
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def _set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.id,
            httponly=True,
            secure=True,
            samesite="strict",
            path="/",
        )

    async def _expire_idle(self) -> None:
        for session in self.sessions.expired():
            for name, login in session.logins.items():
                await self.api.logout(name, login.access_token)

    def page(
        self, route: str, *, login: bool = True, post: bool = False
    ) -> Callable[[Handler], Handler]:
        """Sessions, authentication, CSRF and metrics around a handler."""

        def decorate(handler: Handler) -> Handler:
            async def wrapped(request: Request) -> Response:
                started = time.perf_counter()
                cookie = request.cookies.get(COOKIE)
                if (
                    cookie is None
                    and request.method == "GET"
                    and request.headers.get("sec-fetch-site") == "cross-site"
                ):
                    # SameSite=Strict keeps the cookie off links from other sites: reload
                    # from this site (cookie sent), never overwrite a working session.
                    return self.render(request, "reload.html")
                session, expired = self.sessions.get(cookie)
                if expired is not None:
                    for name, old in expired.logins.items():
                        await self.api.logout(name, old.access_token)
                await self._expire_idle()  # everyone else's idle sessions
                fresh = session is None
                if session is None:
                    session = self.sessions.new()
                request.scope["homeport_session"] = session
                if login and not session.authenticated:
                    target = request.url.path
                    if request.url.query:
                        target += "?" + request.url.query
                    note = "&expired=1" if expired is not None else ""
                    response: Response = RedirectResponse(
                        f"/login?next={quote(target, safe='')}{note}", status_code=303
                    )
                elif post and not await self._csrf_ok(request, session):
                    response = self.render(
                        request,
                        "error.html",
                        status_code=403,
                        message="Missing or wrong CSRF token.",
                    )
                else:
                    try:
                        response = await handler(request)
                    except (SynapseApiError, httpx.HTTPError) as error:
                        response = self.render(
                            request,
                            "error.html",
                            status_code=502,
                            message=f"The homeserver answered with an error: {error}",
                        )
                if fresh or request.scope.get("homeport_new_session"):
                    self._set_cookie(response, request.scope["homeport_session"])
                response.headers["Cache-Control"] = "no-store"
                response.headers["X-Frame-Options"] = "DENY"
                response.headers["Content-Security-Policy"] = (
                    "default-src 'self'; script-src 'self'; style-src 'self'; "
                    "img-src 'self'; frame-ancestors 'none'; form-action 'self'"
                )
                response.headers["Referrer-Policy"] = "same-origin"
                self.requests.labels(route, str(response.status_code)).inc()
                self.render_seconds.labels(route).observe(time.perf_counter() - started)
                return response

            return wrapped

        return decorate

    async def _csrf_ok(self, request: Request, session: Session) -> bool:
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
        return sent is not None and secrets.compare_digest(
            sent.encode("utf-8", "replace"), session.csrf_token.encode()
        )

    def current_login(self, request: Request) -> tuple[str, Login]:
        session: Session = request.scope["homeport_session"]
        name = session.current
        if name is None or name not in session.logins:
            name = next(iter(session.logins))
            session.current = name
        return name, session.logins[name]

    # Pages --------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        session: Session = request.scope["homeport_session"]
        return self.render(
            request,
            "login.html",
            next=safe_next(request.query_params.get("next")),
            expired=request.query_params.get("expired") == "1",
            chosen=request.query_params.get("homeserver") or session.current or "",
            error="",
        )

    async def login(self, request: Request) -> Response:
        form = await request.form()
        name = str(form.get("homeserver", ""))
        username = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        target = safe_next(str(form.get("next", "")))
        error = ""
        if name not in self.deployment.homeservers:
            error = "Choose a homeserver of this deployment."
        elif not username or not password:
            error = "Enter a username and a password."
        else:
            try:
                user_id, token = await self.api.login(name, username, password)
            except NotAdminError as refused:
                error = f"{refused} is not a server admin of {name}; only server admins may log in."
            except SynapseApiError as failed:
                error = (
                    "Wrong username or password."
                    if failed.status in (401, 403)
                    else f"The homeserver refused the login: {failed}"
                )
            else:
                old: Session = request.scope["homeport_session"]
                # A new session ID at login: a planted cookie never becomes a login.
                session = self.sessions.new()
                session.logins = dict(old.logins)
                if name in session.logins:
                    await self.api.logout(name, session.logins[name].access_token)
                session.logins[name] = Login(user_id, token)
                session.current = name
                self.sessions.end(old)
                request.scope["homeport_session"] = session
                request.scope["homeport_new_session"] = True
                return RedirectResponse(target, status_code=303)
        return self.render(
            request,
            "login.html",
            status_code=400 if error else 200,
            next=target,
            expired=False,
            chosen=name,
            error=error,
        )

    async def logout(self, request: Request) -> Response:
        session: Session = request.scope["homeport_session"]
        for name, login in session.logins.items():
            await self.api.logout(name, login.access_token)
        self.sessions.end(session)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    async def switch(self, request: Request) -> Response:
        session: Session = request.scope["homeport_session"]
        form = await request.form()
        name = str(form.get("homeserver", ""))
        if name not in self.deployment.homeservers:
            return self.render(
                request, "error.html", status_code=400, message="Unknown homeserver."
            )
        if name not in session.logins:
            return RedirectResponse(f"/login?homeserver={quote(name)}", status_code=303)
        session.current = name
        return RedirectResponse(safe_next(str(form.get("next", ""))), status_code=303)

    async def federation(self, request: Request) -> Response:
        name, login = self.current_login(request)
        params = request.query_params
        order_by = params.get("order_by", "destination")
        if order_by not in SORTABLE:
            order_by = "destination"
        direction = "b" if params.get("dir") == "b" else "f"
        search = params.get("q", "").strip()[:200]
        start = offset(request)
        page = await self.api.destinations(
            name, login.access_token, start, PAGE_SIZE, order_by, direction, search
        )
        rows = page.get("destinations", [])
        counts = await self.api.room_counts(
            name, login.access_token, [r["destination"] for r in rows]
        )
        now = self.now_ms()
        destinations = [
            {
                "destination": row["destination"],
                "status": destination_status(row),
                "first_failed": when(row.get("failure_ts"), now),
                "last_failed": when(row.get("retry_last_ts"), now),
                "next_attempt": when(next_attempt_ms(row), now),
                "rooms": count,
                "stream_ordering": row.get("last_successful_stream_ordering"),
            }
            for row, count in zip(rows, counts, strict=True)
        ]
        total = int(page.get("total", 0))
        context: dict[str, Any] = {
            "destinations": destinations,
            "total": total,
            "start": start,
            "page_size": PAGE_SIZE,
            "next_start": page.get("next_token"),
            "prev_start": max(0, start - PAGE_SIZE) if start > 0 else None,
            "order_by": order_by,
            "direction": direction,
            "search": search,
            "sortable": SORTABLE,
        }
        partial = request.headers.get("hx-request") == "true" and not request.headers.get(
            "hx-history-restore-request"
        )
        if partial:
            response = self.render(request, "_destinations.html", **context)
            response.headers["Vary"] = "HX-Request"
            return response
        hs = self.deployment.homeservers[name]
        allowed = effective_whitelist(self.deployment, name)
        quiet: list[str] = []
        if allowed is not None:
            candidates = [s for s in allowed if s != hs.server_name]
            counts = await self.api.room_counts(name, login.access_token, candidates)
            quiet = [s for s, c in zip(candidates, counts, strict=True) if c == 0]
        response = self.render(
            request,
            "federation.html",
            whitelist=allowed,
            quiet=quiet,
            **context,
        )
        response.headers["Vary"] = "HX-Request"
        return response

    async def destination(self, request: Request) -> Response:
        name, login = self.current_login(request)
        destination = request.path_params["destination"]
        row = (
            None
            if destination in (".", "..")
            else await self.api.destination(name, login.access_token, destination)
        )
        if row is None:
            return self.render(
                request,
                "error.html",
                status_code=404,
                message=f"{name} has no destination {destination!r}.",
            )
        start = offset(request)
        listing = await self.api.destination_rooms(
            name, login.access_token, destination, start, PAGE_SIZE
        )
        rooms = []
        for entry in listing.get("rooms", []):
            details = await self.api.room(name, login.access_token, entry["room_id"]) or {}
            joined = int(details.get("joined_members") or 0)
            local = int(details.get("joined_local_members") or 0)
            rooms.append(
                {
                    "room_id": entry["room_id"],
                    "name": details.get("name"),
                    "alias": details.get("canonical_alias"),
                    "local": local,
                    "remote": max(0, joined - local),
                    "federated": details.get("federatable"),
                    "creator_server": server_of(details.get("creator")),
                }
            )
        now = self.now_ms()
        allowed = effective_whitelist(self.deployment, name)
        peer = next(
            (n for n, hs in self.deployment.homeservers.items() if hs.server_name == destination),
            None,
        )
        return self.render(
            request,
            "destination.html",
            destination=destination,
            status=destination_status(row),
            first_failed=when(row.get("failure_ts"), now),
            last_failed=when(row.get("retry_last_ts"), now),
            next_attempt=when(next_attempt_ms(row), now),
            stream_ordering=row.get("last_successful_stream_ordering"),
            can_reset=can_reset(row),
            rooms=rooms,
            rooms_total=int(listing.get("total", 0)),
            start=start,
            page_size=PAGE_SIZE,
            next_start=listing.get("next_token"),
            whitelisted=allowed is None or destination in allowed,
            whitelist_open=allowed is None,
            peer=peer,
            verify=self._verify_for(name, peer),
            reset_done=request.query_params.get("reset") == "1",
        )

    def _verify_for(self, name: str, peer: str | None) -> dict[str, Any] | None:
        if peer is None:
            return None
        try:
            report = json.loads(self.layout.last_verify.read_text())
        except (OSError, ValueError):
            return None
        checks = [
            c
            for c in report.get("checks", [])
            if {c.get("viewer"), c.get("target")} == {name, peer}
        ]
        finished = report.get("finished_at")
        return {
            "checks": checks,
            "when": when(int(finished * 1000), self.now_ms()) if finished else None,
        }

    async def reset(self, request: Request) -> Response:
        name, login = self.current_login(request)
        destination = request.path_params["destination"]
        if destination in (".", ".."):
            return self.render(request, "error.html", status_code=404, message="No such server.")
        if not await self.api.reset_connection(name, login.access_token, destination):
            return self.render(
                request,
                "error.html",
                status_code=400,
                message=f"{destination} needs no reset: Synapse is not backing off from it.",
            )
        return RedirectResponse(
            f"/federation/{quote(destination, safe='')}?reset=1", status_code=303
        )

    async def rooms(self, request: Request) -> Response:
        name, login = self.current_login(request)
        params = request.query_params
        search = params.get("q", "").strip()[:200]
        federated_only = params.get("federated") == "1"
        elsewhere_only = params.get("elsewhere") == "1"
        start = offset(request)
        page = await self.api.rooms(name, login.access_token, start, 50, search)
        own = self.deployment.homeservers[name].server_name
        rooms = []
        for room in page.get("rooms", []):
            creator_server = server_of(room.get("creator"))
            if federated_only and not room.get("federatable"):
                continue
            if elsewhere_only and creator_server == own:
                continue
            joined = int(room.get("joined_members") or 0)
            local = int(room.get("joined_local_members") or 0)
            rooms.append(
                {
                    "room_id": room["room_id"],
                    "name": room.get("name"),
                    "alias": room.get("canonical_alias"),
                    "creator_server": creator_server,
                    "federated": room.get("federatable"),
                    "published": room.get("public"),
                    "space": room.get("room_type") == "m.space",
                    "local": local,
                    "remote": max(0, joined - local),
                }
            )
        return self.render(
            request,
            "rooms.html",
            rooms=rooms,
            total=int(page.get("total_rooms", 0)),
            start=start,
            next_start=page.get("next_batch"),
            prev_start=max(0, start - 50) if start > 0 else None,
            search=search,
            federated_only=federated_only,
            elsewhere_only=elsewhere_only,
            own=own,
        )

    async def policy(self, request: Request) -> Response:
        name, _login = self.current_login(request)
        findings = [f for f in lint(self.deployment) if f.homeserver == name]
        return self.render(
            request,
            "policy.html",
            sentences=policy_sentences(self.deployment, name),
            findings=findings,
        )

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/federation", status_code=303)

    async def favicon(self, request: Request) -> Response:
        return Response(status_code=204)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")

    # The application ----------------------------------------------------------

    def app(self) -> Starlette:
        @asynccontextmanager
        async def lifespan(_app: Starlette) -> Any:
            yield
            # Sessions live in memory and die with the website: so do their tokens.
            for session in self.sessions.all():
                for name, login in session.logins.items():
                    await self.api.logout(name, login.access_token)
            await self.api.aclose()

        p = self.page
        return Starlette(
            routes=[
                Route("/", p("home")(self.home)),
                Route("/health", self.health),
                Route("/favicon.ico", self.favicon),
                Route("/metrics", self.metrics),
                Route("/login", p("login", login=False)(self.login_form), methods=["GET"]),
                Route("/login", p("login", login=False, post=True)(self.login), methods=["POST"]),
                Route("/logout", p("logout", post=True)(self.logout), methods=["POST"]),
                Route("/switch", p("switch", post=True)(self.switch), methods=["POST"]),
                Route("/federation", p("federation")(self.federation)),
                Route(
                    "/federation/{destination}/reset",
                    p("reset", post=True)(self.reset),
                    methods=["POST"],
                ),
                Route("/federation/{destination}", p("destination")(self.destination)),
                Route("/rooms", p("rooms")(self.rooms)),
                Route("/policy", p("policy")(self.policy)),
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            ],
            lifespan=lifespan,
        )
