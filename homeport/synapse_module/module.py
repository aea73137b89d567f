"""The Homeport module, loaded into every Synapse that Homeport renders.

It enforces what Synapse's settings cannot express: `policy.rooms.
federation: never` makes every room and space created on the homeserver
non-federated (`m.federate: false`), for every client and every user, server
admins included; `policy.rooms.internal_spaces` keeps the rooms of chosen
spaces non-federated on a homeserver that federates (`internal_spaces`).

A creation request is rewritten, not refused: Element and other clients never
ask about federation, and refusing their requests would make room creation
fail for everyone. A client that explicitly asks for `m.federate: true` gets
a non-federated room too; the policy wins. Upgrades of such rooms stay
non-federated (Synapse copies `m.federate` into the new room); upgrading a
federated room (created elsewhere, or before the policy) from such a server
is refused, since the new room would be created here, federated.

With an audit bot, it enforces the bot's rules (`audit_rules`): only in
rooms created here, added and removed by server admins only.

It also serves the admin website's Federation tab in one request per page,
server admins only. Synapse's admin API counts the rooms of one destination
per request; the module answers

- `GET /_homeport/v1/destinations` with the page of destinations exactly as
  Synapse's admin API lists it (same parameters, and Synapse's own storage
  method `get_destinations_paginate`, so paging, order and search cannot
  differ) plus the room count of each, and of the servers named in `also`;
- `GET /_homeport/v1/destination_room_counts?destination=...`: the room
  counts and delivery state alone, where the page comes from elsewhere;
- `GET /_homeport/v1/delivery`: every destination that events are waiting
  for, oldest first (for `homeport status` and the website's metrics);
- `GET /_homeport/v1/room_member?room_id=&user_id=`: whether this server is
  in the room, and the user's member event, the power levels and the create
  event: what the conference service needs, in one in-process read (the
  admin API would take three requests and the room's whole state);
- `GET /_homeport/v1/directory_accounts`: the accounts bound to the directory
  (created by it, or linked by an administrator), which group sync alone may
  manage (the admin API would take a request per user);
- `GET /_homeport/v1/internal_spaces`, on a homeserver with internal spaces:
  each one of homeport.yaml with the room it names, and every room they hold
  with whether it federates, is open to other servers' eyes, holds other
  servers' users or sits in a space outside them (what `homeport verify`
  and the website report as drift);
- `GET /_homeport/v1/background_updates`: the background updates Synapse has
  still to run. A new homeserver runs about sixty in its first minute, one of
  which rebuilds the user directory from scratch and drops what live updates
  wrote meanwhile; `homeport verify` waits for them.

Delivery state comes from Synapse's own catch-up bookkeeping: a room in
`destination_rooms` whose `stream_ordering` is past the destination's
`last_successful_stream_ordering` holds events the destination has not
received (the test Synapse's catch-up itself uses). Synapse records a failed
destination only after a transaction's long retries; this state shows from
the first undelivered event. The page can also be ordered by the next
attempt and by the oldest undelivered event, which Synapse's admin API
cannot do.

Synapse's module API has no call for the page itself, so the module reaches
the storage method through the module API's datastore; when a Synapse
lacks it, only the counts endpoint is served and the website asks twice.
"""

from __future__ import annotations

import logging
from typing import Any

from homeport.identities import DIRECTORY_AUTH_PROVIDER
from homeport.synapse_module import mixed_queries, queries
from homeport.synapse_module.audit_rules import AuditRules
from homeport.synapse_module.config import HomeportModuleConfig
from homeport.synapse_module.contract import (
    BACKGROUND_UPDATES_PATH,
    DELIVERY_PATH,
    DESTINATIONS_PATH,
    DIRECTORY_ACCOUNTS_PATH,
    GIVEN_ORDER,
    INTERNAL_SPACES_PATH,
    MAX_DESTINATIONS,
    MIXED_ROOMS_PATH,
    MOST_UNDELIVERED,
    NEXT_ATTEMPT,
    ROOM_COUNTS_PATH,
    ROOM_MEMBER_PATH,
    UNDELIVERED_SINCE,
)
from homeport.synapse_module.internal_spaces import InternalSpaces

logger = logging.getLogger(__name__)


UPGRADE_REFUSED = (
    "This server creates only non-federated rooms (rooms.federation: never), and "
    "upgrading this room would create a federated one here. Upgrade it from a server "
    "whose users may create federated rooms."
)


def _delivery_resource(api: Any) -> Any:
    from synapse.module_api import DirectServeJsonResource

    class Delivery(DirectServeJsonResource):
        """Every destination that lacks events, the longest waiting first."""

        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            from synapse.http.servlet import parse_boolean, parse_integer

            await _require_admin(api, request)
            limit = parse_integer(request, "limit", default=queries.MAX_UNDELIVERED)
            limit = max(0, min(limit, MOST_UNDELIVERED))
            events = parse_boolean(request, "events", default=False)  # how many wait
            waiting = await api.run_db_interaction(
                "homeport_undelivered", queries.undelivered, api.server_name, None, events
            )
            rows = queries.oldest_first(waiting, limit)
            return 200, {"undelivered": rows, "total": len(waiting)}

    return Delivery()


def _room_member_resource(api: Any) -> Any:
    from synapse.api.errors import SynapseError
    from synapse.http.servlet import parse_string
    from synapse.module_api import DirectServeJsonResource

    wanted = [("m.room.power_levels", ""), ("m.room.create", "")]

    class RoomMember(DirectServeJsonResource):
        """One user's membership in a room, with the room's power levels and creation."""

        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            await _require_admin(api, request)
            room_id = parse_string(request, "room_id", required=True)
            user_id = parse_string(request, "user_id", required=True)
            if not room_id.startswith("!") or not user_id.startswith("@"):
                raise SynapseError(400, "room_id and user_id must be IDs", "M_INVALID_PARAM")
            if not await api._store.is_host_joined(room_id, api.server_name):
                return 200, {"in_room": False}
            state = await api.get_room_state(room_id, [("m.room.member", user_id), *wanted])
            events = [event.get_dict() for event in state.values()]
            return 200, {"in_room": True, "state": events}

    return RoomMember()


def _directory_accounts_resource(api: Any) -> Any:
    from synapse.module_api import DirectServeJsonResource

    class DirectoryAccounts(DirectServeJsonResource):
        """Who the directory may act on: the accounts bound to it."""

        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            await _require_admin(api, request)
            users = await api.run_db_interaction(
                "homeport_directory_accounts",
                queries.accounts_of_provider,
                DIRECTORY_AUTH_PROVIDER,
            )
            return 200, {"user_ids": users}

    return DirectoryAccounts()


def _background_updates_resource(api: Any) -> Any:
    from synapse.module_api import DirectServeJsonResource

    class BackgroundUpdates(DirectServeJsonResource):
        """What Synapse has still to run in the background, next first."""

        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            await _require_admin(api, request)
            pending = await api.run_db_interaction(
                "homeport_background_updates", queries.pending_background_updates
            )
            return 200, {"pending": pending}

    return BackgroundUpdates()


def _internal_spaces_resource(api: Any, internal: InternalSpaces) -> Any:
    from synapse.module_api import DirectServeJsonResource

    class Report(DirectServeJsonResource):
        """The internal spaces and their rooms, with what drift needs of each."""

        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            await _require_admin(api, request)
            return 200, await internal.report()

    return Report()


def _mixed_rooms_resource(api: Any) -> Any:
    from synapse.api.errors import SynapseError
    from synapse.http.servlet import parse_strings_from_args
    from synapse.module_api import DirectServeJsonResource

    class MixedRooms(DirectServeJsonResource):
        """Rooms this server's users are in with servers outside `allowed`; unfinished joins."""

        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            await _require_admin(api, request)
            allowed = parse_strings_from_args(request.args, "allowed") or []
            if len(allowed) > MAX_DESTINATIONS:
                raise SynapseError(400, f"at most {MAX_DESTINATIONS} servers", "M_INVALID_PARAM")
            allowed = list(dict.fromkeys([api.server_name, *allowed]))
            return 200, await api.run_db_interaction(
                "homeport_mixed_rooms", mixed_queries.mixed_rooms, allowed
            )

    return MixedRooms()


def _room_counts_resource(api: Any) -> Any:
    from synapse.api.errors import SynapseError
    from synapse.http.servlet import parse_strings_from_args
    from synapse.module_api import DirectServeJsonResource

    class RoomCounts(DirectServeJsonResource):
        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            await _require_admin(api, request)
            destinations = parse_strings_from_args(request.args, "destination") or []
            if len(destinations) > MAX_DESTINATIONS:
                raise SynapseError(
                    400, f"at most {MAX_DESTINATIONS} destinations", "M_INVALID_PARAM"
                )
            counts, undelivered = await api.run_db_interaction(
                "homeport_destination_facts", queries.page_facts, api.server_name, destinations
            )
            return 200, {"counts": counts, "undelivered": undelivered}

    return RoomCounts()


async def _require_admin(api: Any, request: Any) -> None:
    from synapse.api.errors import SynapseError

    requester = await api.get_user_by_req(request)
    if not await api.is_user_admin(requester.user.to_string()):
        raise SynapseError(403, "You are not a server admin", "M_FORBIDDEN")


def _destinations_resource(api: Any, paginate: Any) -> Any:
    from synapse.api.constants import Direction
    from synapse.api.errors import SynapseError
    from synapse.http.servlet import (
        parse_enum,
        parse_integer,
        parse_string,
        parse_strings_from_args,
    )
    from synapse.module_api import DirectServeJsonResource
    from synapse.storage.databases.main.transactions import DestinationSortOrder

    class Destinations(DirectServeJsonResource):
        """Synapse's destinations admin API, page for page, with room counts."""

        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            await _require_admin(api, request)
            start = parse_integer(request, "from", default=0)
            limit = parse_integer(request, "limit", default=100)
            also = parse_strings_from_args(request.args, "also") or []
            if limit > MAX_DESTINATIONS or len(also) > MAX_DESTINATIONS:
                raise SynapseError(
                    400, f"at most {MAX_DESTINATIONS} destinations", "M_INVALID_PARAM"
                )
            order_by = parse_string(
                request,
                "order_by",
                default=DestinationSortOrder.DESTINATION.value,
                allowed_values=[
                    *(order.value for order in DestinationSortOrder),
                    NEXT_ATTEMPT,
                    UNDELIVERED_SINCE,
                    GIVEN_ORDER,
                ],
            )
            direction = parse_enum(request, "dir", Direction, default=Direction.FORWARDS)
            search = parse_string(request, "destination")
            names = parse_strings_from_args(request.args, "name") or []
            if order_by == GIVEN_ORDER:
                rest_from = parse_integer(request, "rest_from", default=0)
                rest_limit = parse_integer(request, "rest_limit", default=0)
                if len(names) + rest_limit > MAX_DESTINATIONS or rest_from < 0:
                    raise SynapseError(
                        400, f"at most {MAX_DESTINATIONS} destinations", "M_INVALID_PARAM"
                    )
                rows, total = await api.run_db_interaction(
                    "homeport_destinations_given",
                    queries.given_order,
                    names,
                    rest_from,
                    rest_limit,
                    search,
                )
            elif order_by in (NEXT_ATTEMPT, UNDELIVERED_SINCE):
                rows, total = await api.run_db_interaction(
                    "homeport_destinations_paginate",
                    queries.paginate_own_order,
                    api.server_name,
                    start,
                    limit,
                    search,
                    order_by,
                    direction == Direction.BACKWARDS,
                )
            else:
                rows, total = await paginate(start, limit, search, order_by, direction)
            # The rows as Synapse's admin API words them.
            body: dict[str, Any] = {
                "destinations": [
                    {
                        "destination": row[0],
                        "retry_last_ts": row[1] or 0,
                        "retry_interval": row[2] or 0,
                        "failure_ts": row[3],
                        "last_successful_stream_ordering": row[4],
                    }
                    for row in rows
                ],
                "total": total,
            }
            if start + limit < total:
                body["next_token"] = str(start + len(rows))
            names = list(dict.fromkeys([row[0] for row in rows] + also))
            counts, undelivered = await api.run_db_interaction(
                "homeport_destination_facts", queries.page_facts, api.server_name, names
            )
            body["room_counts"] = counts
            body["undelivered"] = undelivered
            return 200, body

    return Destinations()


class HomeportModule:
    def __init__(self, config: HomeportModuleConfig, api: Any) -> None:
        self._rooms_federate = config.rooms_federation != "never"
        # Before the audit bot's rules: a refusal must come before its rewrite of an event.
        self._internal: InternalSpaces | None = None
        if config.internal_spaces:
            self._internal = InternalSpaces(config.internal_spaces, api)
            api.register_third_party_rules_callbacks(
                check_event_allowed=self._internal.check_event_allowed
            )
            api.register_spam_checker_callbacks(
                user_may_create_room=self._internal.user_may_create_room
            )
            api.register_web_resource(
                INTERNAL_SPACES_PATH, _internal_spaces_resource(api, self._internal)
            )
        self._audit = AuditRules(config.audit, api) if config.audit is not None else None
        api.register_third_party_rules_callbacks(on_create_room=self.on_create_room)
        if not self._rooms_federate:
            api.register_spam_checker_callbacks(user_may_create_room=self.user_may_create_room)
        api.register_web_resource(ROOM_COUNTS_PATH, _room_counts_resource(api))
        paginate = getattr(getattr(api, "_store", None), "get_destinations_paginate", None)
        api.register_web_resource(DELIVERY_PATH, _delivery_resource(api))
        api.register_web_resource(MIXED_ROOMS_PATH, _mixed_rooms_resource(api))
        api.register_web_resource(BACKGROUND_UPDATES_PATH, _background_updates_resource(api))
        api.register_web_resource(ROOM_MEMBER_PATH, _room_member_resource(api))
        api.register_web_resource(DIRECTORY_ACCOUNTS_PATH, _directory_accounts_resource(api))
        if paginate is not None:
            api.register_web_resource(DESTINATIONS_PATH, _destinations_resource(api, paginate))
        else:
            logger.warning("homeport: this Synapse cannot list destinations for the module")

    @staticmethod
    def parse_config(config: dict[str, Any]) -> HomeportModuleConfig:
        """Synapse's start fails on a missing, unknown or mistyped key (a ValueError)."""
        return HomeportModuleConfig.model_validate(config)

    async def on_create_room(
        self, requester: Any, request: dict[str, Any], _is_requester_admin: bool
    ) -> None:
        # Server admins are no exception: `_is_requester_admin` is deliberately unused.
        if self._internal is not None:
            await self._internal.on_create_room(request)
        if self._audit is not None:
            await self._audit.on_create_room(request)
        if self._rooms_federate:
            return
        creation_content = request.setdefault("creation_content", {})
        if creation_content.get("m.federate") is not False:
            logger.info(
                "homeport: creating a non-federated room for %s (rooms.federation: never)",
                requester.user.to_string(),
            )
        creation_content["m.federate"] = False

    async def user_may_create_room(self, user_id: str, room_config: dict[str, Any]) -> Any:
        """Refuse a federated room that `on_create_room` did not see: a room upgrade.

        Synapse's upgrade (`clone_existing_room`) skips `on_create_room` and
        copies `m.federate` from the old room, so upgrading a federated room
        (created elsewhere, or before the policy) would create a federated room
        here. It asks this check, for server admins too, before the new room
        has any event and before the old one is tombstoned. `/createRoom` asks
        it after `on_create_room`, so its requests always pass.
        """
        from synapse.api.errors import Codes
        from synapse.module_api import NOT_SPAM

        if room_config.get("creation_content", {}).get("m.federate") is False:
            return NOT_SPAM
        logger.info("homeport: refused a federated room for %s (rooms.federation: never)", user_id)
        return Codes.FORBIDDEN, {"error": UPGRADE_REFUSED}
