"""Registering users on a homeserver of the deployment."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

import httpx

from homeport.config.deployment import Deployment
from homeport.credentials import registration_shared_secret
from homeport.errors import HomeportError, NotRunningError
from homeport.identities import is_owned, owned_reason
from homeport.layout import DeploymentLayout
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.api import RegisteredUser, SynapseApiError, SynapseClient
from homeport.trust import client_ssl_context

_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+$")


def check_localpart(localpart: str, bot_localparts: Iterable[str] = ()) -> str:
    """A name people may have: valid, and none of Homeport's own (`homeport.identities`)."""
    if not _LOCALPART.match(localpart):
        raise ValueError(
            f"{localpart!r} is not a valid user name: use lower-case letters, digits and ._=-/+"
        )
    if is_owned(localpart, bot_localparts):
        raise ValueError(owned_reason(localpart))
    return localpart


def generate_password() -> str:
    return secrets.token_urlsafe(18)


async def create_user(
    deployment: Deployment, name: str, localpart: str, password: str, admin: bool
) -> str:
    """Register `localpart` on homeserver `name`; returns the Matrix ID."""
    return (await register_user(deployment, name, localpart, password, admin)).user_id


async def register_user(
    deployment: Deployment,
    name: str,
    localpart: str,
    password: str,
    admin: bool,
    device_name: str | None = None,
) -> RegisteredUser:
    """Register `localpart` on homeserver `name`, with the session Synapse opens with it
    (its device named `device_name`)."""
    hs = deployment.homeservers[name]
    files = DeploymentLayout(deployment.data_dir).homeserver(name)
    try:
        async with SynapseClient(
            hs.local_url, client_ssl_context(deployment), tls_name=hs.tls_name
        ) as client:
            user = await SynapseAdmin(client).register(
                registration_shared_secret(files), localpart, password, admin, device_name
            )
    except (httpx.ConnectError, FileNotFoundError) as error:
        raise NotRunningError(
            f"homeserver {name!r} is not running at {hs.base_url}; start it with `homeport up`"
        ) from error
    except SynapseApiError as error:
        if error.errcode == "M_USER_IN_USE":
            raise HomeportError(f"@{localpart}:{hs.server_name} already exists") from error
        raise
    return user
