"""One check of the deployment's federation: what each homeserver's Synapse says, and
whether each homeserver answers on its federation port.

Synapse's view (through the Homeport module and the admin API, as Homeport's
service account): every destination whose events wait, and siblings that
never received anything. Homeport's own view: a sibling that does not answer
`/_matrix/federation/v1/version` over verified TLS is not answering, whoever
would send to it, and long before Synapse, which only notices when it has
something to send.
"""

from __future__ import annotations

import ssl

import httpx

from homeport.alerts.incidents import Observation, Waiting
from homeport.config.deployment import Deployment
from homeport.policy.effective import effective_whitelist
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.api import SynapseApiError, SynapseClient
from homeport.synapse_module.contract import MOST_UNDELIVERED

PROBE_TIMEOUT_S = 5.0


def siblings(deployment: Deployment, name: str) -> dict[str, str]:
    """The other homeservers of the file that homeserver `name` federates with: name ->
    server name."""
    allowed = effective_whitelist(deployment, name)
    return {
        other: hs.server_name
        for other, hs in deployment.homeservers.items()
        if other != name and (allowed is None or hs.server_name in allowed)
    }


def watched(deployment: Deployment, name: str) -> frozenset[str]:
    """The destinations whose incidents homeserver `name`'s administrators are told of."""
    important = deployment.alerts.important.get(name, []) if deployment.alerts else []
    return frozenset(siblings(deployment, name).values()) | frozenset(important)


async def probe(deployment: Deployment, name: str, context: ssl.SSLContext) -> str | None:
    """None when homeserver `name` answers on its federation port; else what went wrong."""
    hs = deployment.homeservers[name]
    try:
        async with SynapseClient(
            hs.local_url, context, timeout=PROBE_TIMEOUT_S, tls_name=hs.tls_name
        ) as client:
            await client.federation_version()
    except SynapseApiError as error:
        return f"it answered {error.status} {error.errcode or error.message}".strip()
    except httpx.ConnectError:
        return "connection refused or no route to it"
    except httpx.TimeoutException:
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    except (httpx.HTTPError, OSError, ValueError, KeyError) as error:
        return f"{type(error).__name__}: {error}"
    return None


async def observe(
    deployment: Deployment,
    name: str,
    admin: SynapseAdmin,
    not_answering: dict[str, str],
    now_ms: int,
) -> Observation:
    """Homeserver `name`'s check; `not_answering`: the homeservers (by name) whose probe
    failed in this round. Raises what its Synapse raised when it did not answer."""
    rows, _total = await admin.undelivered(limit=MOST_UNDELIVERED, events=True)
    waiting = {row.destination: Waiting(row.since_ms, row.rooms, row.events) for row in rows}
    sibling_servers = siblings(deployment, name)
    never: dict[str, int] = {}
    for server in sibling_servers.values():
        row = await admin.destination(server)
        if row and row.failure_ts and row.last_successful_stream_ordering is None:
            never[server] = row.failure_ts
    silent = {
        server: not_answering[other]
        for other, server in sibling_servers.items()
        if other in not_answering
    }
    return Observation(name, now_ms, waiting, silent, never)
