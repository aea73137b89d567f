"""Logging in as a server admin, switching homeserver, logging out."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from homeport.admin.api import NotAdminError
from homeport.admin.middleware import COOKIE
from homeport.admin.sessions import Login
from homeport.admin.site import NEW_SESSION_SCOPE_KEY, SESSION_SCOPE_KEY, session_of, site_of
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
    session = session_of(request)
    return site_of(request).templates.render(
        request,
        "login.html",
        next=safe_next(request.query_params.get("next")),
        expired=request.query_params.get("expired") == "1",
        chosen=request.query_params.get("homeserver") or session.current or "",
        error="",
    )


async def login(request: Request) -> Response:
    site = site_of(request)
    form = await request.form()
    name = str(form.get("homeserver", ""))
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    error = ""
    if name not in site.deployment.homeservers:
        error = "Choose a homeserver of this deployment."
    elif not username or not password:
        error = "Enter a username and a password."
    else:
        try:
            user_id, token = await site.api.login(name, username, password)
        except NotAdminError as refused:
            error = f"{refused} is not a server admin of {name}; only server admins may log in."
        except SynapseApiError as failed:
            error = (
                "Wrong username or password."
                if failed.status in (401, 403)
                else f"The homeserver refused the login: {failed}"
            )
        else:
            old = session_of(request)
            # A new session ID at login: a planted cookie never becomes a login.
            session = site.sessions.new()
            session.logins = dict(old.logins)
            if name in session.logins:
                await site.api.logout(name, session.logins[name].access_token)
            session.logins[name] = Login(user_id, token)
            session.current = name
            site.sessions.end(old)
            request.scope[SESSION_SCOPE_KEY] = session
            request.scope[NEW_SESSION_SCOPE_KEY] = True
            return RedirectResponse(target, status_code=303)
    return site.templates.render(
        request,
        "login.html",
        status_code=400 if error else 200,
        next=target,
        expired=False,
        chosen=name,
        error=error,
    )


async def logout(request: Request) -> Response:
    site = site_of(request)
    session = session_of(request)
    for name, login in session.logins.items():
        await site.api.logout(name, login.access_token)
    site.sessions.end(session)
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
