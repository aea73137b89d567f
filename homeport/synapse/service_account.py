"""Homeport's own admin account on each homeserver, for the admin API.

Created once through shared-secret registration; its password and token are
kept in the homeserver's keys folder (0600) and never printed.
`service_client(deployment, name)` is the one way Homeport's commands and
services get an admin API client for a homeserver.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from homeport.config.deployment import Deployment
from homeport.errors import HomeportError
from homeport.files import ensure_dir, write_private
from homeport.identities import SERVICE_LOCALPART
from homeport.layout import DeploymentLayout, HomeserverLayout
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.api import RegisteredUser, SynapseApiError, SynapseClient
from homeport.trust import client_ssl_context

# How long a process waits for another that is making or mending the account (a few
# admin API calls, each with the client's 30 s timeout).
CREATION_WAIT_S = 120.0


async def admin_token(client: SynapseClient, layout: HomeserverLayout) -> str:
    """A working admin access token, now also the client's: the stored one, a fresh
    login, or a new account."""
    token = await _stored_token(client, layout)
    if token is not None:
        return token
    # Services that `up` starts together each find no working token at first: one at a
    # time makes or mends the account, and the others take what it stored. (Each making
    # its own would retire the account another had just made, in the middle of its work.)
    async with _one_at_a_time(layout):
        token = await _stored_token(client, layout)
        if token is not None:
            return token
        return await _make_or_mend(client, layout)


async def _stored_token(client: SynapseClient, layout: HomeserverLayout) -> str | None:
    stored = _stored(layout)
    token = stored.get("access_token")
    if not token:
        return None
    client.with_token(token)
    try:
        await client.whoami()
    except SynapseApiError as error:
        if error.status != 401:
            raise
        return None
    return token


def _stored(layout: HomeserverLayout) -> dict[str, str]:
    if not layout.service_account.exists():
        return {}
    stored: dict[str, str] = json.loads(layout.service_account.read_text())
    return stored


@asynccontextmanager
async def _one_at_a_time(layout: HomeserverLayout) -> AsyncIterator[None]:
    """An exclusive lock beside the credentials file, between processes (flock: a holder
    that dies lets go), waited for `CREATION_WAIT_S` at most."""
    path = layout.service_account.with_name(layout.service_account.name + ".lock")
    fd = os.open(ensure_dir(path.parent) / path.name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + CREATION_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HomeportError(
                        f"another Homeport process has held {path} for "
                        f"{CREATION_WAIT_S:.0f} s while making the service account; "
                        "stop it (see `homeport status`) and try again"
                    ) from None
                await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)  # lets go of the lock


async def _make_or_mend(client: SynapseClient, layout: HomeserverLayout) -> str:
    """Log in with the stored password, or register the account (or a replacement)."""
    stored = _stored(layout)
    password = stored.get("password") or secrets.token_urlsafe(32)
    admin = SynapseAdmin(client)
    try:
        user = await client.login(stored.get("user_id", SERVICE_LOCALPART), password)
    except SynapseApiError as error:
        if error.status != 403:
            raise
        shared = layout.registration_shared_secret.read_text().strip()
        # Credentials rendered ahead (a cluster's Secret) name the account to create.
        localpart = stored.get("user_id", SERVICE_LOCALPART).removeprefix("@").split(":")[0]
        registered: RegisteredUser | None
        try:
            registered = await admin.register(shared, localpart, password, True)
        except SynapseApiError as taken:
            if taken.errcode != "M_USER_IN_USE":
                raise
            # Another process with the same credentials (a second pod, a service
            # started beside `up`) may have registered it a moment ago.
            registered = await _log_in_or_none(client, localpart, password)
        if registered is None:
            # Our credentials file was lost but the account remains: rather
            # than lock Homeport out, register a fresh service account, and
            # retire the old one, whose password nobody knows any more.
            registered = await admin.register(
                shared, f"{SERVICE_LOCALPART}-{secrets.token_hex(3)}", password, True
            )
            client.with_token(registered.access_token)
            lost = (
                stored.get("user_id")
                or f"@{SERVICE_LOCALPART}:{registered.user_id.split(':', 1)[1]}"
            )
            await admin.deactivate(lost)
        user = registered
        client.with_token(user.access_token)
        await admin.override_ratelimit(user.user_id)
    write_private(
        layout.service_account,
        json.dumps(
            {"user_id": user.user_id, "password": password, "access_token": user.access_token}
        ).encode(),
    )
    client.with_token(user.access_token)
    return user.access_token


async def _log_in_or_none(client: SynapseClient, user: str, password: str) -> RegisteredUser | None:
    try:
        return await client.login(user, password)
    except SynapseApiError as error:
        if error.status != 403:
            raise
        return None


@asynccontextmanager
async def service_client(
    deployment: Deployment, name: str, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[SynapseAdmin]:
    """The admin API of homeserver `name` as Homeport's service account; closed on exit."""
    hs = deployment.homeservers[name]
    context = ssl_context or client_ssl_context(deployment)
    async with SynapseClient(hs.local_url, context, tls_name=hs.tls_name) as client:
        await admin_token(client, DeploymentLayout(deployment.data_dir).homeserver(name))
        yield SynapseAdmin(client)
