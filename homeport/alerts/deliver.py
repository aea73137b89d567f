"""Sending the outbox: each notice to the administrators' room and to the webhook.

Each channel of a notice is sent until it succeeds, with a growing pause
between tries (a webhook down for an hour gets its notices when it is back),
and given up after a day (said in the log). A room message carries the
notice's ID as its transaction ID, and the webhook's JSON carries it too, so
a notice sent again after a crash is recognisably the same one. Alertmanager
forgets an alert that is not sent again within its `resolve_timeout`: in that
format the open alerts are sent again every minute.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import httpx
from sqlalchemy import Engine

from homeport.alerts import store
from homeport.alerts.accounts import ServiceAccounts
from homeport.alerts.incidents import Notice
from homeport.alerts.notices import Context, alertmanager_alert, room_message, webhook_body
from homeport.alerts.room import AdminsRoom
from homeport.config.deployment import Deployment
from homeport.synapse.api import SynapseApiError
from homeport.synapse.spaces_api import SpacesApi
from homeport.trust import client_ssl_context

logger = logging.getLogger("homeport.alerts")

WEBHOOK_TIMEOUT_S = 10.0
FIRST_PAUSE_MS = 15_000
LONGEST_PAUSE_MS = 3_600_000
ALERTMANAGER_EVERY_MS = 60_000
Sent = tuple[str, str]  # (channel, result): ("room", "sent"), ("webhook", "failed")...


def pause_ms(attempts: int) -> int:
    """The wait before the next try of a channel that failed `attempts` times."""
    return int(min(FIRST_PAUSE_MS * 2 ** max(0, attempts - 1), LONGEST_PAUSE_MS))


def webhook_ssl_context(deployment: Deployment) -> ssl.SSLContext:
    """The deployment's trust plus the system's: a receiver may have a public certificate."""
    context = client_ssl_context(deployment)
    context.load_default_certs()
    return context


class Courier:
    def __init__(self, deployment: Deployment, engine: Engine, accounts: ServiceAccounts) -> None:
        assert deployment.alerts is not None
        self._deployment = deployment
        self._engine = engine
        self._accounts = accounts
        self._webhook = deployment.alerts.webhook
        self._rooms: dict[str, AdminsRoom] = {}
        self._http: httpx.AsyncClient | None = None
        self._headers: dict[str, str] = {"Content-Type": "application/json"}
        if self._webhook is not None:
            self._http = httpx.AsyncClient(
                verify=webhook_ssl_context(deployment), timeout=WEBHOOK_TIMEOUT_S
            )
            if self._webhook.token_file is not None:
                token = self._webhook.token_file.read_text().strip()
                self._headers["Authorization"] = f"Bearer {token}"
        self._refreshed_ms = 0

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def _context(self, homeserver: str, now_ms: int, notice_id: int | None) -> Context:
        server = self._deployment.homeservers[homeserver].server_name
        return Context(server, now_ms, self._deployment.admin_url, notice_id)

    async def _room(self, homeserver: str) -> AdminsRoom:
        if homeserver not in self._rooms:
            admin = await self._accounts.get(homeserver)
            server = self._deployment.homeservers[homeserver].server_name
            bots = self._deployment.homeservers[homeserver].bot_localparts
            self._rooms[homeserver] = AdminsRoom(SpacesApi(admin.client, server), bots)
        return self._rooms[homeserver]

    async def _to_room(self, notice: Notice, notice_id: int, now_ms: int) -> None:
        room = await self._room(notice.homeserver)
        admin = await self._accounts.get(notice.homeserver)
        server = self._deployment.homeservers[notice.homeserver].server_name
        content = room_message(notice, self._context(notice.homeserver, now_ms, notice_id))
        try:
            room_id = await room.room_id()
            await SpacesApi(admin.client, server).send_message(
                room_id, f"homeport-alert-{notice_id}", content
            )
        except SynapseApiError:
            room.forget()  # the room may have gone (purged): made again next time
            raise

    async def _post(self, body: Any) -> None:
        assert self._http is not None
        assert self._webhook is not None
        response = await self._http.post(self._webhook.url, json=body, headers=self._headers)
        if response.is_error:
            raise httpx.HTTPStatusError(
                f"the webhook answered {response.status_code}",
                request=response.request,
                response=response,
            )

    async def send_due(self, now_ms: int) -> list[Sent]:
        """Send what is due in the outbox; what each channel came to."""
        sent: list[Sent] = []
        for due in await asyncio.to_thread(store.due_notices, self._engine, now_ms):
            room, webhook = due.room, due.webhook
            errors: list[str] = []
            if room == "pending":
                try:
                    await self._to_room(due.notice, due.id, now_ms)
                    room = "sent"
                except (SynapseApiError, httpx.HTTPError, OSError) as error:
                    errors.append(f"room: {error}")
                sent.append(("room", "sent" if room == "sent" else "failed"))
            if webhook == "pending" and self._webhook is not None:
                context = self._context(due.notice.homeserver, now_ms, due.id)
                try:
                    await self._post(webhook_body(due.notice, self._webhook.format, context))
                    webhook = "sent"
                except (httpx.HTTPError, OSError) as error:
                    errors.append(f"webhook: {error}")
                sent.append(("webhook", "sent" if webhook == "sent" else "failed"))
            elif webhook == "pending":
                webhook = "off"  # the webhook was removed from the file since
            attempts = due.attempts + (1 if errors else 0)
            if errors and now_ms - due.created_ms >= store.NOTICE_EXPIRES_MS:
                room = "expired" if room == "pending" else room
                webhook = "expired" if webhook == "pending" else webhook
                logger.error(
                    "notice given up after a day", extra={"notice": due.id, "errors": errors}
                )
            elif errors:
                logger.warning("notice not delivered yet", extra={"notice": due.id,
                               "errors": errors})  # fmt: skip
            await asyncio.to_thread(
                store.mark_notice,
                self._engine,
                due.id,
                room,
                webhook,
                attempts,
                now_ms + pause_ms(attempts),
                "; ".join(errors) or None,
            )
        if self._webhook is not None and self._webhook.format == "alertmanager":
            await self._refresh_alertmanager(now_ms)
        return sent

    async def _refresh_alertmanager(self, now_ms: int) -> None:
        """Every open incident that was told, sent again: Alertmanager keeps it firing."""
        if now_ms - self._refreshed_ms < ALERTMANAGER_EVERY_MS:
            return
        self._refreshed_ms = now_ms
        told = await asyncio.to_thread(store.told_open, self._engine)
        if not told:
            return
        alerts = [alertmanager_alert(i, self._context(i.homeserver, now_ms, None)) for i in told]
        try:
            await self._post(alerts)
        except (httpx.HTTPError, OSError) as error:
            logger.warning("Alertmanager not refreshed", extra={"error": str(error)})

    def waiting(self) -> int:
        """Notices with a channel still to send (for /health)."""
        return store.undelivered_notices(self._engine)
