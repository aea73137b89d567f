"""The audit rules' HTTP endpoints on Synapse's listener (admin token required):
add or remove the bot, and an event's original content for the bot."""

from __future__ import annotations

from typing import Any

from homeport.synapse_module.audit_queries import original_txn


def membership_resource(api: Any, action: Any) -> Any:
    from synapse.api.errors import SynapseError
    from synapse.http.servlet import parse_json_object_from_request
    from synapse.module_api import DirectServeJsonResource

    class AuditMembership(DirectServeJsonResource):
        """`POST {"room": ID or alias, "by": who}`: server admins only."""

        async def _async_render_POST(self, request: Any) -> tuple[int, dict[str, Any]]:
            requester = await api.get_user_by_req(request)
            if not await api.is_user_admin(requester.user.to_string()):
                raise SynapseError(403, "You are not a server admin", "M_FORBIDDEN")
            body = parse_json_object_from_request(request)
            room, by = body.get("room"), body.get("by")
            if not isinstance(room, str) or not room or not isinstance(by, str):
                raise SynapseError(400, "give `room` (ID or alias) and `by`", "M_BAD_JSON")
            room_id = room
            if room.startswith("#"):
                room_id, _ = await api.lookup_room_alias(room)
            elif not room.startswith("!"):
                raise SynapseError(
                    400, f"{room!r} is neither a room ID nor an alias", "M_INVALID_PARAM"
                )
            return 200, await action(room_id, by[:255])

    return AuditMembership()


def original_resource(api: Any, bot: str) -> Any:
    """`GET ?event_id=`: for the audit bot alone, an event of a room it records as it was
    sent, when it reaches the bot already redacted (delivered late: the bot was down, and
    someone redacted it meanwhile). Synapse keeps it for `redaction_retention_period`
    (7 days by default)."""
    from synapse.api.errors import NotFoundError, SynapseError
    from synapse.http.servlet import parse_string
    from synapse.module_api import DirectServeJsonResource

    class Original(DirectServeJsonResource):
        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            requester = await api.get_user_by_req(request)
            if requester.user.to_string() != bot:
                raise SynapseError(403, "Only the audit bot reads this", "M_FORBIDDEN")
            event_id = parse_string(request, "event_id", required=True)
            content = await api.run_db_interaction(
                "homeport_audit_original", original_txn, event_id, bot
            )
            if content is None:
                raise NotFoundError("No such event in a room the audit bot records")
            return 200, {"content": content}

    return Original()
