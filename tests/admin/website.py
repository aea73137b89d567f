"""Driving the admin website in process: httpx against the ASGI app, as a browser would."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@asynccontextmanager
async def browser(app: Starlette, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client at `address` that keeps the website's (Secure) cookies, over ASGI."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://admin.test") as client:
        yield client


def csrf_token(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


async def log_in(
    client: httpx.AsyncClient, homeserver: str, user: str, password: str
) -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login",
        data={
            "csrf_token": csrf_token(form.text),
            "homeserver": homeserver,
            "username": user,
            "password": password,
            "next": "/federation",
        },
    )
