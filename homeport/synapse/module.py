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

It also answers one question that Synapse's admin API can only answer one
destination at a time: how many rooms federate with each of a page of
destinations (`GET /_homeport/v1/destination_room_counts?destination=...`,
server admins only), so that the admin website's Federation tab costs one
request per page instead of one per row.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


ROOM_COUNTS_PATH = "/_homeport/v1/destination_room_counts"
MAX_DESTINATIONS = 200


def _count_rooms(txn: Any, destinations: list[str]) -> dict[str, int]:
    placeholders = ", ".join("?" for _ in destinations)
    txn.execute(
        "SELECT destination, COUNT(*) FROM destination_rooms"  # noqa: S608 - placeholders only
        f" WHERE destination IN ({placeholders}) GROUP BY destination",
        destinations,
    )
    counts = dict.fromkeys(destinations, 0)
    counts.update({str(row[0]): int(row[1]) for row in txn.fetchall()})
    return counts


def _room_counts_resource(api: Any) -> Any:
    from synapse.api.errors import SynapseError
    from synapse.http.servlet import parse_strings_from_args
    from synapse.module_api import DirectServeJsonResource

    class RoomCounts(DirectServeJsonResource):
        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            requester = await api.get_user_by_req(request)
            if not await api.is_user_admin(requester.user.to_string()):
                raise SynapseError(403, "You are not a server admin", "M_FORBIDDEN")
            destinations = parse_strings_from_args(request.args, "destination") or []
            if len(destinations) > MAX_DESTINATIONS:
                raise SynapseError(
                    400, f"at most {MAX_DESTINATIONS} destinations", "M_INVALID_PARAM"
                )
            if not destinations:
                return 200, {"counts": {}}
            counts = await api.run_db_interaction(
                "homeport_destination_room_counts", _count_rooms, destinations
            )
            return 200, {"counts": counts}

    return RoomCounts()


class HomeportModule:
    def __init__(self, config: dict[str, Any], api: Any) -> None:
        self._rooms_federate = config.get("rooms_federation", "creator_choice") != "never"
        api.register_third_party_rules_callbacks(on_create_room=self.on_create_room)
        api.register_web_resource(ROOM_COUNTS_PATH, _room_counts_resource(api))

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
