"""The real homeservers behind the admin website: one connection pool per homeserver.

Each call goes through a view of the pool bound to the logged-in admin's
token, so Synapse itself authorises every action of every admin.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from homeport.admin.api import NotAdminError
from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.api import SynapseApiError, SynapseClient
from homeport.synapse.models import Undelivered
from homeport.synapse.service_account import admin_token
from homeport.synapse.spaces_api import SpacesApi

T = TypeVar("T")


class LiveHomeservers:
    def __init__(self, deployment: Deployment, ssl_context: ssl.SSLContext) -> None:
        self._clients = {
            name: SynapseClient(hs.local_url, ssl_context, tls_name=hs.tls_name)
            for name, hs in deployment.homeservers.items()
        }
        self._layout = DeploymentLayout(deployment.data_dir)
        self._server_names = {name: hs.server_name for name, hs in deployment.homeservers.items()}
        # Homeport's service account, for what needs no logged-in admin (metrics).
        self._service = {
            name: SynapseClient(hs.local_url, ssl_context, tls_name=hs.tls_name)
            for name, hs in deployment.homeservers.items()
        }
        self._service_ready: set[str] = set()

    async def aclose(self) -> None:
        for client in (*self._clients.values(), *self._service.values()):
            await client.aclose()

    async def undelivered(self, name: str) -> tuple[list[Undelivered], int]:
        return await self._as_service(name, lambda admin: admin.undelivered())

    async def directory_login(self, name: str) -> dict[str, Any] | None:
        return await self._as_service(name, lambda admin: admin.directory_login())

    async def _as_service(self, name: str, call: Callable[[SynapseAdmin], Awaitable[T]]) -> T:
        """`call` as Homeport's service account, for what needs no logged-in admin."""
        client = self._service[name]
        if name not in self._service_ready:
            await admin_token(client, self._layout.homeserver(name))
            self._service_ready.add(name)
        try:
            return await call(SynapseAdmin(client))
        except SynapseApiError as error:
            if error.status == 401:  # the token was logged out: fetch one next time
                self._service_ready.discard(name)
            raise

    def admin(self, name: str, token: str) -> SynapseAdmin:
        return SynapseAdmin(self._clients[name].as_user(token))

    def spaces(self, name: str, token: str) -> SpacesApi:
        return SpacesApi(self._clients[name].as_user(token), self._server_names[name])

    async def login(self, name: str, user: str, password: str) -> tuple[str, str]:
        login = await self._clients[name].login(user, password, "Homeport admin website")
        is_admin = False
        try:
            is_admin = await self.admin(name, login.access_token).is_admin(login.user_id)
        finally:
            if not is_admin:
                await self.logout(name, login.access_token)  # no token stays behind
        if not is_admin:
            raise NotAdminError(login.user_id)
        return login.user_id, login.access_token

    async def is_admin(self, name: str, token: str, user_id: str) -> bool:
        try:
            return await self.admin(name, token).is_admin(user_id)
        except SynapseApiError as error:
            if error.status == 401:  # logged out, deactivated
                return False
            raise

    async def logout(self, name: str, token: str) -> None:
        # Already logged out, or the server is down: the token is gone with us anyway.
        with contextlib.suppress(SynapseApiError, httpx.HTTPError, OSError):
            await self._clients[name].as_user(token).logout()
