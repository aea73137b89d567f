"""The audit bot as `up` sees it: its restart policy, its name and its /health."""

from __future__ import annotations

import httpx

from homeport.audit.registration import BOT_ADDRESS
from homeport.config.types import AUDIT_SERVICE_PREFIX
from homeport.supervision.service import RestartPolicy

# A bot killed in the middle of a transaction loses nothing (Synapse sends it
# again), so it comes back at once, then backs off if it keeps crashing.
RESTART = RestartPolicy(backoff=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0))


def service_name(homeserver: str) -> str:
    return AUDIT_SERVICE_PREFIX + homeserver


async def bot_health(port: int) -> dict[str, object] | None:
    """The bot's /health answer, or None when it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            response = await http.get(f"http://{BOT_ADDRESS}:{port}/health")
        body = response.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None
