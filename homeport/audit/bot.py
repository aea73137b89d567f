"""The audit bot's process: serve Synapse's transactions, register with it, decrypt, export.

`up` starts it after its homeserver, on a loopback socket `up` bound first
(`homeport audit run --fd N`). It serves at once, so that Synapse can deliver
what waited while it was down, and then registers its user, sets the display
name that tells members they are recorded, and pings Synapse through the
application service ping API, which also makes Synapse retry at once the
transactions the bot missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx

from homeport.audit.app import BotState, create_app, follow
from homeport.audit.crypto import Decryptor
from homeport.audit.export import ContinuousExport
from homeport.audit.registration import REGISTRATION_ID
from homeport.config.deployment import Deployment
from homeport.config.types import size_bytes
from homeport.layout import DeploymentLayout
from homeport.logs import log_to_file
from homeport.store.database import open_store
from homeport.supervision.loopback import loopback_config
from homeport.supervision.serving import serve_until
from homeport.synapse.api import tls_named_http
from homeport.synapse_module.contract import AUDIT_ORIGINAL_PATH
from homeport.trust import client_ssl_context

logger = logging.getLogger("homeport.audit")

RETRY_S = 1.0


class SynapseRefused(Exception):
    """Synapse answered, and not as the bot needs."""


def _check(response: httpx.Response, *also_fine: str) -> None:
    if response.status_code == 200:
        return
    try:
        errcode = response.json().get("errcode", "")
    except ValueError:
        errcode = ""
    if errcode in also_fine:
        return
    raise SynapseRefused(f"{response.request.url.path}: {response.status_code} {errcode}")


async def register(http: httpx.AsyncClient, localpart: str, user_id: str, displayname: str) -> None:
    """The bot's account (created once), its display name, and Synapse's ping."""
    response = await http.post(
        "/_matrix/client/v3/register",
        json={"type": "m.login.application_service", "username": localpart},
        params={"inhibit_login": "true"},
    )
    _check(response, "M_USER_IN_USE")
    user = quote(user_id, safe="")
    as_bot = {"user_id": user_id}  # the application service acts as its bot
    response = await http.get(f"/_matrix/client/v3/profile/{user}/displayname")
    if response.status_code != 200 or response.json().get("displayname") != displayname:
        response = await http.put(
            f"/_matrix/client/v3/profile/{user}/displayname",
            json={"displayname": displayname},
            params=as_bot,
        )
        _check(response)
    response = await http.post(f"/_matrix/client/v1/appservice/{REGISTRATION_ID}/ping", json={})
    _check(response)


async def keep_trying(state: BotState, step: Callable[[], Awaitable[None]]) -> None:
    """Repeat `step` until it succeeds: Synapse may be restarting or held stopped."""
    while True:
        try:
            await step()
        except (httpx.HTTPError, OSError, SynapseRefused) as error:
            state.problem = f"waiting for its homeserver: {error}"
            state.metrics.ready.set(0)
            await asyncio.sleep(RETRY_S)
            continue
        except Exception as error:  # a step that cannot work yet must not end the bot silently
            logger.exception("start-up step failed; trying again")
            state.problem = f"start-up failed: {type(error).__name__}"
            state.metrics.ready.set(0)
            await asyncio.sleep(RETRY_S)
            continue
        state.ready, state.problem = True, "ok"
        state.metrics.ready.set(1)
        logger.info("registered with Synapse", extra={"user_id": state.bot_user_id})
        return


async def main(
    deployment: Deployment, name: str, listening: socket.socket | None, stop: asyncio.Event
) -> None:
    """Record `name`'s audited rooms until `stop` is set."""
    hs = deployment.homeservers[name]
    bot = hs.audit_bot
    assert bot is not None
    assert hs.audit_user_id is not None
    layout = DeploymentLayout(deployment.data_dir)
    files = layout.audit(name)
    log_to_file(files.log_file)
    engine = open_store(deployment)
    state = BotState(
        homeserver=name,
        bot_user_id=hs.audit_user_id,
        hs_token=files.hs_token.read_text().strip(),
        engine=engine,
    )
    as_token = files.as_token.read_text().strip()
    config = loopback_config(create_app(state), bot.port, 64)
    async with tls_named_http(
        hs.local_url,
        client_ssl_context(deployment),
        hs.tls_name,
        headers={"Authorization": f"Bearer {as_token}"},
        timeout=30,
    ) as http:
        decryptor = Decryptor(
            name,
            engine,
            (hs.tls_name, hs.local_address, hs.port),
            state.bot_user_id,
            files.crypto_dir,
            files.device_file,
            client_ssl_context(deployment),
            on_decrypted=state.changed.set,  # the continuous export follows decryptions too
        )
        state.followers.append(decryptor.new_records)

        async def original(event_id: str) -> dict[str, Any] | None:
            response = await http.get(
                AUDIT_ORIGINAL_PATH, params={"event_id": event_id, "user_id": state.bot_user_id}
            )
            if response.status_code == 404:
                return None
            response.raise_for_status()
            content = response.json().get("content")
            return content if isinstance(content, dict) else None

        state.original = original
        if bot.export is not None:
            exporter = ContinuousExport(
                engine,
                name,
                bot.export.directory,  # made absolute by the loader
                size_bytes(bot.export.max_file_size),
                files.export_cursor,
            )

            async def export_new() -> None:
                await asyncio.to_thread(exporter.write_new)

            state.followers.append(export_new)
        state.changed.set()  # whatever was recorded while the bot was down

        async def start_up() -> None:
            await keep_trying(
                state, lambda: register(http, bot.localpart, state.bot_user_id, bot.displayname)
            )
            await keep_trying(state, lambda: decryptor.start(http, bot.localpart))
            while True:
                try:
                    await decryptor.new_records()  # recorded before the device was ready
                    await decryptor.run()
                except Exception:  # the recording goes on; decryption resumes
                    logger.exception("the encryption device failed; starting it again")
                    await asyncio.sleep(5)

        background = [asyncio.create_task(start_up()), asyncio.create_task(follow(state))]
        try:
            await serve_until(config, listening, stop)
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await decryptor.close()
            engine.dispose()
