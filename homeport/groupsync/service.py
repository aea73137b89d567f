"""Group sync as `up` sees it: its restart policy and its /health."""

from __future__ import annotations

import httpx

from homeport.supervision.loopback import ADDRESS
from homeport.supervision.service import RestartPolicy

# A run cut short is finished by the next one (the plan is made again from
# what Synapse holds), so a crash comes back soon, then backs off.
RESTART = RestartPolicy(backoff=(1.0, 2.0, 5.0, 10.0, 30.0, 60.0))


async def health(port: int) -> tuple[int, dict[str, object]] | None:
    """The service's /health status and body, or None when it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            response = await http.get(f"http://{ADDRESS}:{port}/health")
        body = response.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return (response.status_code, body) if isinstance(body, dict) else None
