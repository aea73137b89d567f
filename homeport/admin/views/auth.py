"""Logging in as a server admin, switching homeserver, logging out."""

from __future__ import annotations

import math
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from homeport.admin.api import NotAdminError
from homeport.admin.middleware import COOKIE
from homeport.admin.sessions import Login
from homeport.admin.site import (
    NEW_SESSION_SCOPE_KEY,
    SESSION_SCOPE_KEY,
    session_of,
    session_or_none,
    site_of,
)
from homeport.synapse.api import SynapseApiError


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


async def login_form(request: Request) -> Response:
    session = session_or_none(request)
    return site_of(request).templates.render(
        request,
        "login.html",
        next=safe_next(request.query_params.get("next")),
        expired=request.query_params.get("expired") == "1",
        revoked=request.query_params.get("revoked") == "1",
        chosen=request.query_params.get("homeserver") or (session.current if session else "") or "",
        error="",
    )


# One answer for a wrong password and for a user who is not a server admin:
# the login page never confirms that someone's password is right.
REFUSED = "Wrong username or password, or not a server admin of {name}."


async def login(request: Request) -> Response:
    site = site_of(request)
    form = await request.form()
    name = str(form.get("homeserver", ""))
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    address = request.client.host if request.client else "unknown"
    user_key = f"{name}\n{username.lower()}"
    wait = max(site.logins_by_address.wait(address), site.failures_by_user.wait(user_key))
    if wait > 0:
        return _login_page(request, name, target, "Too many login attempts.", math.ceil(wait))
    if name not in site.deployment.homeservers:
        return _login_page(request, name, target, "Choose a homeserver of this deployment.")
    if not username or not password:
        return _login_page(request, name, target, "Enter a username and a password.")
    try:
        user_id, token = await site.api.login(name, username, password)
    except (NotAdminError, SynapseApiError) as refused:
        if isinstance(refused, SynapseApiError) and refused.status == 429:
            return _login_page(request, name, target, "The homeserver is limiting logins.", 30)
        if isinstance(refused, SynapseApiError) and refused.status not in (401, 403):
            return _login_page(request, name, target, f"The homeserver refused: {refused}")
        site.logins_by_address.spend(address)
        site.failures_by_user.spend(user_key)
        return _login_page(request, name, target, REFUSED.format(name=name))
    return await _logged_in(request, name, Login(user_id, token, site.sessions.now()), target)


def _login_page(
    request: Request, name: str, target: str, error: str, retry_after: int = 0
) -> Response:
    """The login form again, with what went wrong; a 429 with Retry-After when throttled."""
    if retry_after:
        error = f"{error} Try again in {retry_after} s."
    response = site_of(request).templates.render(
        request,
        "login.html",
        status_code=429 if retry_after else 400,
        next=target,
        expired=False,
        revoked=False,
        chosen=name,
        error=error,
    )
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


async def _logged_in(request: Request, name: str, login: Login, target: str) -> Response:
    """A new session (a new ID: a planted cookie never becomes a login), keeping other logins."""
    site = site_of(request)
    old = session_or_none(request)
    logins = dict(old.logins) if old else {}
    if name in logins:
        await site.api.logout(name, logins.pop(name).access_token)
    logins[name] = login
    if old is not None:
        old.logins = {}  # moved to the new session: ending the old one must not log them out
        site.sessions.end(old, "replaced")
    request.scope[SESSION_SCOPE_KEY] = site.sessions.new(logins, name)
    request.scope[NEW_SESSION_SCOPE_KEY] = True
    return RedirectResponse(target, status_code=303)


async def logout(request: Request) -> Response:
    site = site_of(request)
    site.sessions.end(session_of(request), "logged out")  # the middleware logs its tokens out
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


async def switch(request: Request) -> Response:
    site = site_of(request)
    session = session_of(request)
    form = await request.form()
    name = str(form.get("homeserver", ""))
    if name not in site.deployment.homeservers:
        return site.templates.error(request, 400, "Unknown homeserver.")
    if name not in session.logins:
        return RedirectResponse(f"/login?homeserver={quote(name)}", status_code=303)
    session.current = name
    return RedirectResponse(safe_next(str(form.get("next", ""))), status_code=303)
