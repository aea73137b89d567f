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
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
from nio import AsyncClient, AsyncClientConfig, EncryptionError, MegolmEvent, SyncResponse
from sqlalchemy import Engine

from homeport.audit import store
from homeport.audit.records import EventRecord, relates_to, searchable_body
from homeport.files import ensure_dir, read_or_create_private

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
        json={
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": localpart},
            "device_id": device,
            "initial_device_display_name": DEVICE_NAME,
        },
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


class Decryptor:
    """Keeps the bot's device in sync and fills in the plaintext of recorded events."""

    def __init__(
        self,
        homeserver: str,
        engine: Engine,
        base_url: str,
        user_id: str,
        crypto_dir: Path,
        device_file: Path,
        ssl_context: ssl.SSLContext,
    ) -> None:
        self._homeserver = homeserver
        self._engine = engine
        self._base_url = base_url
        self._user_id = user_id
        self._crypto_dir = crypto_dir
        self._device_file = device_file
        self._ssl = ssl_context
        self._client: AsyncClient | None = None
        self._lock = asyncio.Lock()
        self.decrypted = 0

    async def start(self, http: httpx.AsyncClient, localpart: str) -> None:
        device = device_id(self._device_file)
        token = await device_login(http, localpart, device)
        ensure_dir(self._crypto_dir)
        client = AsyncClient(
            self._base_url,
            self._user_id,
            device_id=device,
            store_path=str(self._crypto_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
            ssl=self._ssl,  # nio accepts an SSLContext too
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
            if response.to_device_events:
                await self.catch_up(after=0)

    async def on_recorded(self, records: list[EventRecord]) -> None:
        encrypted = [r for r in records if r.encrypted]
        if encrypted and self._client is not None:
            await self.catch_up(after=0)

    async def catch_up(self, after: int) -> None:
        """Try every recorded event that still lacks its plaintext (a page at a time)."""
        client = self._client
        if client is None:
            return
        async with self._lock:
            while True:
                page = await asyncio.to_thread(
                    store.undecrypted, self._engine, self._homeserver, after
                )
                found = []
                for _seq, event in page:
                    try:
                        megolm = MegolmEvent.from_dict(event)
                        if not isinstance(megolm, MegolmEvent):
                            continue
                        found.append(_decrypted_row(client.decrypt_event(megolm)))
                    except (EncryptionError, KeyError, ValueError):
                        continue  # no key yet: tried again when keys arrive
                if found:
                    await asyncio.to_thread(
                        store.record_decrypted, self._engine, self._homeserver, found
                    )
                    self.decrypted += len(found)
                if len(page) < 200:
                    return
                after = page[-1][0]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
