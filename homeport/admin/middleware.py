"""The admin website's middleware, plain ASGI (no per-request task or body copy).

Outermost first: metrics, security headers, sessions (with the login
requirement), CSRF. Views behind them only ever see a live session, and
every state-changing request has proven its CSRF token.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs, quote

import httpx
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homeport.admin.sessions import RECHECK_SECONDS, Session
from homeport.admin.site import (
    NEW_SESSION_SCOPE_KEY,
    PRELOGIN_SCOPE_KEY,
    SESSION_SCOPE_KEY,
    Site,
    log_out_ended,
)
from homeport.synapse.api import SynapseApiError

# `__Host-`: Secure, path /, no Domain: no other host can set or shadow it.
COOKIE = "__Host-homeport_session"
PRELOGIN_COOKIE = "__Host-homeport_login"
# Answer without a session: monitoring, assets. Everything else has one.
SESSIONLESS = ("/health", "/metrics", "/favicon.ico", "/static/")
# Reachable before logging in.
PUBLIC = ("/login",)
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    # The website is served over HTTPS only.
    "Strict-Transport-Security": "max-age=31536000",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
MAX_FORM_BYTES = 16 * 1024  # the website's forms are a few fields
FORM_TYPE = "application/x-www-form-urlencoded"


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


def _cookie(name: str, value: str, max_age: int | None = None) -> str:
    response = Response()
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, secure=True, samesite="strict", path="/"
    )
    return response.headers["set-cookie"]


class SessionMiddleware:
    """The session of a logged-in admin; pages other than login need one.

    The browser holds only the session ID. Before login nothing is stored:
    the login page gets a signed pre-login cookie for its CSRF token. A link
    from another site arrives without the SameSite=Strict cookie: the page
    reloads itself from this site (the cookie comes along) instead of asking
    for a login over a working session. Admin rights are confirmed with
    Synapse at least every minute; a session that ends for any reason has its
    Matrix tokens logged out.
    """

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app = app
        self.site = site

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
        session, ended = sessions.get(cookie)
        sessions.sweep()  # everyone else's idle sessions
        if session is not None and await self._confirmed(session) is None:
            session, ended = None, session
        try:
            if session is None:
                await self._anonymous(request, scope, receive, send, ended)
            else:
                scope[SESSION_SCOPE_KEY] = session
                await self.app(scope, receive, _with_new_session_cookie(scope, send))
        finally:
            await log_out_ended(self.site)

    async def _confirmed(self, session: Session) -> Session | None:
        """The session, once Synapse says its admins still are admins (every minute)."""
        now = self.site.sessions.now()
        for name, login in list(session.logins.items()):
            if now - login.checked_at < RECHECK_SECONDS:
                continue
            try:
                still = await self.site.api.is_admin(name, login.access_token, login.user_id)
            except (httpx.HTTPError, OSError, SynapseApiError):
                continue  # Synapse cannot say now: ask again with the next request
            if still:
                login.checked_at = now
                continue
            del session.logins[name]
            await self.site.api.logout(name, login.access_token)
        if not session.logins:
            self.site.sessions.end(session, "revoked")
            return None
        if session.current not in session.logins:
            session.current = next(iter(session.logins))
        return session

    async def _anonymous(
        self, request: Request, scope: Scope, receive: Receive, send: Send, ended: Session | None
    ) -> None:
        if scope["path"] not in PUBLIC:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            note = ""
            if ended is not None:
                note = "&revoked=1" if ended.ended_because == "revoked" else "&expired=1"
            response = RedirectResponse(
                f"/login?next={quote(target, safe='')}{note}", status_code=303
            )
            await response(scope, receive, send)
            return
        prelogin = self.site.prelogin
        issued = None
        token = prelogin.token_of(request.cookies.get(PRELOGIN_COOKIE))
        if token is None:
            issued = prelogin.issue()
            token = prelogin.token_of(issued)
        scope[PRELOGIN_SCOPE_KEY] = token

        async def with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and issued is not None:
                MutableHeaders(scope=message).append("set-cookie", _cookie(PRELOGIN_COOKIE, issued))
            await _with_new_session_cookie(scope, send)(message)

        await self.app(scope, receive, with_cookies)


def _with_new_session_cookie(scope: Scope, send: Send) -> Send:
    """Set the session cookie on the answer to a login (which made a new session)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and scope.get(NEW_SESSION_SCOPE_KEY):
            session: Session = scope[SESSION_SCOPE_KEY]
            headers = MutableHeaders(scope=message)
            headers.append("set-cookie", _cookie(COOKIE, session.id))
            headers.append("set-cookie", _cookie(PRELOGIN_COOKIE, "", max_age=0))
        await send(message)

    return wrapped


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
    """Every state-changing request is a small urlencoded form with the right CSRF token.

    The token is the session's, or before login the pre-login cookie's. The
    body is capped and read here, before any view parses it; anything but
    `application/x-www-form-urlencoded` is refused, so no multipart parser
    ever sees an anonymous request.
    """

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app = app
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        session: Session | None = scope.get(SESSION_SCOPE_KEY)
        expected = session.csrf_token if session is not None else scope.get(PRELOGIN_SCOPE_KEY)
        request = Request(scope)
        if not request.headers.get("content-type", "").startswith(FORM_TYPE):
            await self._refuse(request, send, 415, "Send the form as it is on the page.")
            return
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            await self._refuse(request, send, 413, "The request is too large.")
            return
        body = await _read_body(receive, MAX_FORM_BYTES)
        if body is None:
            await self._refuse(request, send, 413, "The request is too large.")
            return
        receive = _replay(body, receive)
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            values = parse_qs(body.decode("utf-8", "replace")).get("csrf_token", [])
            sent = values[0] if values else None
        if (
            expected is None
            or sent is None
            or not secrets.compare_digest(sent.encode("utf-8", "replace"), expected.encode())
        ):
            await self._refuse(request, send, 403, "Missing or wrong CSRF token.")
            return
        await self.app(scope, receive, send)

    async def _refuse(self, request: Request, send: Send, status: int, message: str) -> None:
        response = self.site.templates.error(request, status, message)

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(request.scope, nothing, send)
