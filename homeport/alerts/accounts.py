"""Homeport's service account on each homeserver, for the alerts service."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from homeport.config.deployment import Deployment
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.service_account import service_client


class ServiceAccounts:
    """Homeport's service account on each homeserver, signed in when first needed: a
    homeserver down when the service starts is simply not checked until it answers
    (meanwhile its siblings' checks report it)."""

    def __init__(self, deployment: Deployment, context: ssl.SSLContext) -> None:
        self._deployment = deployment
        self._context = context
        self._stack = contextlib.AsyncExitStack()
        self._admins: dict[str, SynapseAdmin] = {}
        # One sign-in at a time per homeserver; one that hangs holds up no other.
        self._locks = {name: asyncio.Lock() for name in deployment.homeservers}

    async def get(self, name: str) -> SynapseAdmin:
        async with self._locks[name]:
            if name not in self._admins:
                self._admins[name] = await self._stack.enter_async_context(
                    service_client(self._deployment, name, self._context)
                )
            return self._admins[name]

    async def aclose(self) -> None:
        await self._stack.aclose()
