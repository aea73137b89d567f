"""`homeport restart NAME`: apply an edited homeport.yaml to one running homeserver.

Refused when the file changed what a restart cannot apply (the homeserver's
identity); otherwise the homeserver is held, its config rendered again and
recorded, and released, and its siblings stop backing off from it. The hold
is always released, so on a failure the homeserver runs its old config.
"""

from __future__ import annotations

import asyncio

import httpx

from homeport.config.deployment import Deployment
from homeport.errors import HomeportError
from homeport.homeserver.worker_process import service_name
from homeport.runtime.applied import identity_changes, record_applied
from homeport.runtime.control import Control
from homeport.runtime.prepare import materialize
from homeport.synapse.api import SynapseApiError
from homeport.synapse.service_account import service_client
from homeport.trust import client_ssl_context


def check_restartable(deployment: Deployment, control: Control, name: str) -> None:
    if name not in control.services():
        raise HomeportError(
            f"{name} is not part of the running deployment; stop `homeport up` and start "
            "it again to add a homeserver"
        )
    changes = identity_changes(deployment)
    if changes:
        described = "; ".join(f"{n}: {', '.join(keys)}" for n, keys in changes.items())
        raise HomeportError(
            f"changed in the file, which a restart cannot apply ({described}); "
            f"stop `homeport up` and start it again"
        )


def worker_services(deployment: Deployment, control: Control, name: str) -> list[str]:
    """The running services of homeserver `name`'s workers."""
    running = set(control.services())
    specs = deployment.homeservers[name].workers.specs()
    return [service_name(name, spec) for spec in specs if service_name(name, spec) in running]


def restart_homeserver(deployment: Deployment, control: Control, name: str) -> list[str]:
    """Restart `name` (and its workers) with the file's config; returns the siblings that
    had backed off."""
    check_restartable(deployment, control, name)
    workers = worker_services(deployment, control, name)
    log_file = control.layout.homeserver(name).log_file
    try:
        control.hold_homeserver(name, workers)
        try:
            materialize(deployment, only=name)
        except OSError as error:
            raise HomeportError(f"cannot render {name}'s config: {error}") from error
        record_applied(deployment, [name])
    finally:
        # Whatever happened, the homeserver runs again (with the old config on failure).
        control.release_homeserver(name, workers, log_file)
    return asyncio.run(reset_backoff_toward(deployment, name))


async def reset_backoff_toward(deployment: Deployment, name: str) -> list[str]:
    """Let the other homeservers retry `name` at once, not after their backoff.

    Returns the homeservers that had been backing off from it.
    """
    server_name = deployment.homeservers[name].server_name
    ssl_context = client_ssl_context(deployment)

    async def reset(other: str) -> bool:
        try:
            async with service_client(deployment, other, ssl_context) as admin:
                return await admin.reset_connection(server_name)
        except (httpx.HTTPError, SynapseApiError, OSError):
            return False  # not running: nothing to reset

    others = [other for other in deployment.homeservers if other != name]
    results = await asyncio.gather(*(reset(other) for other in others))
    return [other for other, was_reset in zip(others, results, strict=True) if was_reset]
