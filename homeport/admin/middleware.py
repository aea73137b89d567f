"""The admin website's middleware, plain ASGI (no per-request task or body copy).

Outermost first: metrics, security headers, sessions (with the login
requirement), CSRF. Views behind them only ever see a live session, and
every state-changing request has proven its CSRF token.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs, quote

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homeport.admin.sessions import Session
from homeport.admin.site import NEW_SESSION_SCOPE_KEY, SESSION_SCOPE_KEY, Site

COOKIE = "homeport_session"
# Answer without a session: monitoring, assets. Everything else has one.
SESSIONLESS = ("/health", "/metrics", "/favicon.ico", "/static/")
# Reachable before logging in.
PUBLIC = ("/login",)
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
MAX_FORM_BYTES = 64 * 1024  # the website's forms are a few fields


def _sessionless(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in SESSIONLESS)


class MetricsMiddleware:
    """Requests and their time, by route name and status."""

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app = app
        self.metrics = site.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "name", None) or "unmatched"
            self.metrics.requests.labels(name, str(status)).inc()
            self.metrics.seconds.labels(name).observe(time.perf_counter() - started)


class SecurityHeadersMiddleware:
    """No framing, no foreign scripts, no caching of pages that show private facts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope["path"]).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


def _cookie_header(session: Session) -> str:
    response = Response()
    response.set_cookie(COOKIE, session.id, httponly=True, secure=True, samesite="strict", path="/")
    return response.headers["set-cookie"]


class SessionMiddleware:
    """A server-side session for every page request; pages other than login need a login.

    The browser holds only the session ID. A link from another site arrives
    without the SameSite=Strict cookie: the page reloads itself from this
    site (the cookie comes along) instead of starting a session over a
    working one. Idle sessions end here, and their Matrix tokens are logged out.
    """

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app = app
        self.site = site

    async def _end(self, session: Session) -> None:
        for name, login in session.logins.items():
            await self.site.api.logout(name, login.access_token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _sessionless(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cookie = request.cookies.get(COOKIE)
        if (
            cookie is None
            and request.method == "GET"
            and request.headers.get("sec-fetch-site") == "cross-site"
        ):
            reload = self.site.templates.render(request, "reload.html")
            await reload(scope, receive, send)
            return
        sessions = self.site.sessions
        session, expired = sessions.get(cookie)
        if expired is not None:
            await self._end(expired)
        for idle in sessions.expired():  # everyone else's idle sessions
            await self._end(idle)
        fresh = session is None
        if session is None:
            session = sessions.new()
        scope[SESSION_SCOPE_KEY] = session
        if not session.authenticated and scope["path"] not in PUBLIC:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            note = "&expired=1" if expired is not None else ""
            response = RedirectResponse(
                f"/login?next={quote(target, safe='')}{note}", status_code=303
            )
            if fresh:
                response.headers.append("set-cookie", _cookie_header(session))
            await response(scope, receive, send)
            return

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and (
                fresh or scope.get(NEW_SESSION_SCOPE_KEY)
            ):
                MutableHeaders(scope=message).append(
                    "set-cookie", _cookie_header(scope[SESSION_SCOPE_KEY])
                )
            await send(message)

        await self.app(scope, receive, with_cookie)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than `limit`."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class CSRFMiddleware:
    """Every state-changing request carries the session's CSRF token (header or form field)."""

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app = app
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session: Session | None = scope.get(SESSION_SCOPE_KEY)
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD") or session is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            body = await _read_body(receive, MAX_FORM_BYTES)
            if body is None:
                await self._refuse(request, send, 413, "The request is too large.")
                return
            receive = _replay(body, receive)
            if request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                values = parse_qs(body.decode("utf-8", "replace")).get("csrf_token", [])
                sent = values[0] if values else None
        if sent is None or not secrets.compare_digest(
            sent.encode("utf-8", "replace"), session.csrf_token.encode()
        ):
            await self._refuse(request, send, 403, "Missing or wrong CSRF token.")
            return
        await self.app(scope, receive, send)

    async def _refuse(self, request: Request, send: Send, status: int, message: str) -> None:
        response = self.site.templates.error(request, status, message)

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(request.scope, nothing, send)
