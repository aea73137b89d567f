"""The Homeport module's configuration: one typed model, built by the render and parsed
by the module at Synapse's start.

The render (`homeport.homeserver.render.homeport_module`) builds it from homeport.yaml's
typed settings and the module (`HomeportModule.parse_config`) validates what Synapse
hands it against the same model, so a key renamed on one side fails Synapse's start
(missing or unknown key) instead of silently meaning a default. It runs inside
Synapse: stdlib and pydantic only (Synapse depends on pydantic itself).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

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
    audit: AuditModuleConfig | None = None
