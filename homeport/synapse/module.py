"""The Homeport module, loaded into every Synapse that Homeport renders.

It enforces what Synapse's settings cannot express. Today: `policy.rooms.
federation: never` makes every room and space created on the homeserver
non-federated (`m.federate: false`), for every client and every user, server
admins included.

A creation request is rewritten, not refused: Element and other clients never
ask about federation, and refusing their requests would make room creation
fail for everyone. A client that explicitly asks for `m.federate: true` gets
a non-federated room too; the policy wins. Upgrades of such rooms stay
non-federated (Synapse copies `m.federate` into the new room).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


class HomeportModule:
    def __init__(self, config: dict[str, Any], api: Any) -> None:
        self._rooms_federate = config.get("rooms_federation", "creator_choice") != "never"
        api.register_third_party_rules_callbacks(on_create_room=self.on_create_room)

    @staticmethod
    def parse_config(config: dict[str, Any]) -> dict[str, Any]:
        federation = config.get("rooms_federation", "creator_choice")
        if federation not in ("never", "creator_choice"):
            raise ValueError(
                f"rooms_federation must be 'never' or 'creator_choice', not {federation!r}"
            )
        return config

    async def on_create_room(
        self, requester: Any, request: dict[str, Any], _is_requester_admin: bool
    ) -> None:
        # Server admins are no exception: `_is_requester_admin` is deliberately unused.
        if self._rooms_federate:
            return
        creation_content = request.setdefault("creation_content", {})
        if creation_content.get("m.federate") is not False:
            logger.info(
                "homeport: creating a non-federated room for %s (rooms.federation: never)",
                requester.user.to_string(),
            )
        creation_content["m.federate"] = False
