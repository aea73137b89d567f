"""The audit bot as `up` sees it: its restart policy and its /health."""

from __future__ import annotations

from homeport.supervision.loopback import loopback_health
from homeport.supervision.service import RestartPolicy

# A bot killed in the middle of a transaction loses nothing (Synapse sends it
# again), so it comes back at once, then backs off if it keeps crashing.
RESTART = RestartPolicy(backoff=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0))


async def bot_health(port: int) -> dict[str, object] | None:
    """The bot's /health answer, or None when it does not answer."""
    answer = await loopback_health(port)
    return None if answer is None else answer[1]
