"""`homeport groupsync link`: bind an existing account to its directory person, on purpose.

By default a directory person binds only to an account the directory created
(group sync's provisioning, or their first login). An account made another
way (`homeport user create`, the admin API, before group sync) of the same
name is a conflict, left alone. When an administrator knows it is the same
person, linking it lets group sync manage it and the person log in to it with
their directory password from then on; its local password keeps working too.
Homeport's own accounts can never be linked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from homeport.config.deployment import Deployment
from homeport.directory.ldap_connection import connect
from homeport.directory.ldap_login import LoginName, find_person
from homeport.directory.model import Person
from homeport.errors import HomeportError
from homeport.groupsync.run import settings_of
from homeport.identities import is_owned, localpart_of, owned_reason
from homeport.synapse.service_account import service_client
from homeport.synapse.spaces_api import SpacesApi


@dataclass(frozen=True)
class Linked:
    user_id: str
    person: str  # the directory entry's DN
    already: bool


def _person(deployment: Deployment, localpart: str) -> Person | None:
    settings = settings_of(deployment).ldap
    conn = connect(settings)
    try:
        return find_person(conn, settings, LoginName(settings.localpart_attribute, localpart))
    finally:
        conn.unbind_s()


async def link(deployment: Deployment, user: str) -> Linked:
    """Bind `user` (an ID or a name) to the directory person of the same name."""
    sync = settings_of(deployment)
    hs = deployment.homeservers[sync.homeserver]
    localpart = localpart_of(user)
    user_id = f"@{localpart}:{hs.server_name}"
    if user.startswith("@") and user.split(":", 1)[-1] != hs.server_name:
        raise HomeportError(
            f"{user} is not an account of {hs.server_name}, the homeserver group sync serves"
        )
    if is_owned(localpart, hs.bot_localparts):
        raise HomeportError(f"{user_id} cannot be linked: {owned_reason(localpart)}")
    person = await asyncio.to_thread(_person, deployment, localpart)
    if person is None:
        raise HomeportError(
            f"nobody in the directory is named {localpart!r} "
            f"({sync.ldap.localpart_attribute} under {sync.ldap.user_base}); nothing linked"
        )
    async with service_client(deployment, sync.homeserver) as admin:
        api = SpacesApi(admin.client, hs.server_name)
        if await api.user(user_id) is None:
            raise HomeportError(
                f"{user_id} does not exist: group sync or the person's first login creates it "
                "bound to the directory, with no link needed"
            )
        if user_id in await api.directory_accounts():
            return Linked(user_id, person.dn, already=True)
        await api.link(user_id)
    return Linked(user_id, person.dn, already=False)
