"""The Homeport module's configuration: one typed model, built by the render and parsed
by the module at Synapse's start.

The render (`homeport.homeserver.render.homeport_module`) builds it from homeport.yaml's
typed settings and the module (`HomeportModule.parse_config`) validates what Synapse
hands it against the same model (directory login's too: `DirectoryLoginConfig`), so a
key renamed on one side fails Synapse's start (missing or unknown key) instead of
silently meaning a default. It runs inside
Synapse: stdlib, pydantic (Synapse depends on it) and homeport.yaml's own LDAP model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from homeport.config.groupsync import LdapSettings

RoomsFederation = Literal["never", "creator_choice"]
AutoJoin = Literal["none", "local_rooms"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AuditModuleConfig(_Strict):
    """What the module needs of the homeserver's audit bot."""

    user_id: str
    displayname: str
    auto_join: AutoJoin
    include_direct_messages: bool


class HomeportModuleConfig(_Strict):
    """`modules: [{module: homeport.synapse_module.module.HomeportModule, config: ...}]`."""

    rooms_federation: RoomsFederation
    internal_spaces: list[str]  # aliases (#staff:example.org) and room IDs, this server's
    audit: AuditModuleConfig | None = None


class DirectoryLoginConfig(BaseModel):
    """`modules: [{module: homeport.synapse_module.directory_login.DirectoryLogin, ...}]`:
    group sync's own `ldap:` settings (validated as homeport.yaml's are) and Homeport's
    own accounts, which no directory person may ever become."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ldap: LdapSettings
    bot_localparts: tuple[str, ...]
