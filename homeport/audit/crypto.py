"""The audit bot's end-to-end encryption: a device that clients share room keys with.

The bot records encrypted events as they arrive in Synapse's transactions
(ciphertext, marked encrypted) and completes each with its plaintext in
`audit_decrypted` once it holds the room key: at once when the key came
first, later when it comes after. The device is an ordinary syncing device
of the bot's user (login with the application service's token, the same
device ID on every start), run by matrix-nio with vodozemac; nio keeps the
Olm account and the room keys in `keys/crypto/` (mode 0700 folder), so a
restart is the same device with the same keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
from aiohttp import ClientSession, ClientTimeout, TCPConnector, ThreadedResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ForwardedRoomKeyEvent,
    MegolmEvent,
    RoomKeyEvent,
    SyncResponse,
)
from sqlalchemy import Engine

from homeport.audit import store
from homeport.audit.records import relates_to, searchable_body
from homeport.files import ensure_dir, read_or_create_private
from homeport.synapse.api import login_body

logger = logging.getLogger("homeport.audit")

DEVICE_NAME = "Homeport audit bot"
SYNC_TIMEOUT_MS = 30_000
# The bot needs room members (to know whose keys it gets) and to-device
# messages; timelines reach it through the application service already.
SYNC_FILTER = {
    "room": {
        "timeline": {"limit": 1},
        "ephemeral": {"types": []},
        "account_data": {"types": []},
    },
    "presence": {"types": []},
    "account_data": {"types": []},
}


def device_id(path: Path) -> str:
    """The bot's device ID: chosen once, kept, so every start is the same device."""
    made = json.dumps({"device_id": "HOMEPORTAUDIT" + secrets.token_hex(4).upper()})
    return str(json.loads(read_or_create_private(path, made.encode()))["device_id"])


async def device_login(http: httpx.AsyncClient, localpart: str, device: str) -> str:
    """An access token for the bot's device, by the application service's own login."""
    response = await http.post(
        "/_matrix/client/v3/login",
        json=login_body("m.login.application_service", localpart, DEVICE_NAME, device_id=device),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _decrypted_row(event: Any) -> store.Decrypted:
    source = event.source if isinstance(event.source, dict) else {}
    content = source.get("content", {})
    content = content if isinstance(content, dict) else {}
    return store.Decrypted(
        event_id=event.event_id,
        type=str(source.get("type", "")),
        content=json.dumps(content, ensure_ascii=False, sort_keys=True),
        body=searchable_body(content),
        relates_to=relates_to(content),
        decrypted_ts=int(time.time() * 1000),
    )


class _Pinned(AbstractResolver):
    """Resolves the homeserver's name to where its listener is (`local_address`); nothing else.

    An IP address is used as is; a host name (`service_host`, e.g. Synapse's
    Service in a cluster) is looked up by the system's resolver.
    """

    def __init__(self, name: str, address: str) -> None:
        self._name, self._address = name, address
        self._system = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._name:
            raise OSError(f"the audit bot talks to {self._name} only, not {host}")
        try:
            address = ip_address(self._address)
        except ValueError:
            found = await self._system.resolve(self._address, port, socket.AF_UNSPEC)
            return [{**result, "hostname": host} for result in found]
        inet = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=inet,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        await self._system.close()


class Decryptor:
    """Keeps the bot's device in sync and fills in the plaintext of recorded events."""

    def __init__(
        self,
        homeserver: str,
        engine: Engine,
        homeserver_url: tuple[str, str, int],
        user_id: str,
        crypto_dir: Path,
        device_file: Path,
        ssl_context: ssl.SSLContext,
        on_decrypted: Callable[[], object] = lambda: None,
    ) -> None:
        self._homeserver = homeserver
        self._on_decrypted = on_decrypted
        self._engine = engine
        self._tls_name, self._address, self._port = homeserver_url
        self._user_id = user_id
        self._crypto_dir = crypto_dir
        self._device_file = device_file
        self._ssl = ssl_context
        self._client: AsyncClient | None = None
        self._lock = asyncio.Lock()
        self._tried = 0  # events up to this `seq` were tried when they were recorded
        self.decrypted = 0

    async def start(self, http: httpx.AsyncClient, localpart: str) -> None:
        device = device_id(self._device_file)
        token = await device_login(http, localpart, device)
        ensure_dir(self._crypto_dir)
        client = AsyncClient(
            f"https://{self._tls_name}:{self._port}",
            self._user_id,
            device_id=device,
            store_path=str(self._crypto_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
            ssl=self._ssl,  # nio accepts an SSLContext too
        )
        # nio's own session would look the name up in DNS; Synapse's listener
        # is at its address (see `Homeserver.local_url`), TLS still checks the name.
        client.client_session = ClientSession(
            timeout=ClientTimeout(total=client.config.request_timeout),
            connector=TCPConnector(resolver=_Pinned(self._tls_name, self._address)),
        )
        client.restore_login(self._user_id, device, token)
        if client.should_upload_keys:
            await client.keys_upload()
        self._client = client
        logger.info("encryption device ready", extra={"device_id": device})

    async def run(self) -> None:
        """Sync for ever: room keys arrive as to-device messages."""
        client = self._client
        assert client is not None, "start() first"
        while True:
            response = await client.sync(
                timeout=SYNC_TIMEOUT_MS, sync_filter=SYNC_FILTER, full_state=False
            )
            if not isinstance(response, SyncResponse):
                logger.warning("sync failed", extra={"response": str(response)[:200]})
                await asyncio.sleep(2)
                continue
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            sessions = {
                e.session_id
                for e in response.to_device_events
                if isinstance(e, RoomKeyEvent | ForwardedRoomKeyEvent)
            }
            if sessions:
                await self.catch_up(after=0, sessions=sessions)

    async def new_records(self) -> None:
        """After a transaction: try the events recorded since the last try, once each."""
        if self._client is not None:
            self._tried = await self.catch_up(after=self._tried)

    async def catch_up(self, after: int, sessions: set[str] | None = None) -> int:
        """Try the recorded events that lack their plaintext, after `seq` (a page at a
        time), only those of `sessions` when given (room keys just arrived); returns the
        last `seq` looked at."""
        client = self._client
        if client is None:
            return after
        async with self._lock:
            while True:
                page = await asyncio.to_thread(
                    store.undecrypted, self._engine, self._homeserver, after
                )
                found = []
                for _seq, event in page:
                    if sessions is not None and event["content"].get("session_id") not in sessions:
                        continue
                    try:
                        megolm = MegolmEvent.from_dict(event)
                        if not isinstance(megolm, MegolmEvent):
                            continue
                        found.append(_decrypted_row(client.decrypt_event(megolm)))
                    except (EncryptionError, KeyError, ValueError):
                        continue  # no key yet: tried again when its key arrives
                if found:
                    await asyncio.to_thread(
                        store.record_decrypted, self._engine, self._homeserver, found
                    )
                    self.decrypted += len(found)
                    self._on_decrypted()
                if page:
                    after = page[-1][0]
                if len(page) < store.UNDECRYPTED_PAGE:
                    return after

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
