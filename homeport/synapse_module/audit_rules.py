"""The audit bot's rules, enforced inside Synapse by the Homeport module.

- The bot is only ever in rooms created on this homeserver: an invite of it
  into a room created elsewhere is refused (server admins included), its own
  join of such a room too, and every invite from another server. A room's
  home is the server of its `m.room.create` sender, never the room ID.
- Only server admins add it: an invite of the bot by anyone else is refused
  (except with `auto_join: local_rooms`, where every local room is audited).
- Only server admins remove it: a kick or ban of the bot by anyone else is
  refused. (Synapse asks modules about local events only: a member on
  another server can still kick it from a federated room; the bot records
  that removal and the Audit page shows who did it.)
- Adding: `POST /_homeport/v1/audit/add {"room", "by"}` (server admins only)
  invites the bot in the name of the local member with the most power (as
  Synapse's own `make_room_admin` does, nobody else can invite into a
  private room) with a reason that names who switched recording on, then
  joins it. Its join carries `org.homeport.audit` in the member event: the
  mark every member can see, beside the bot's display name.
- Following: an invite that passed these rules is accepted at once, an
  upgraded audited room is audited in its successor, and `auto_join:
  local_rooms` audits new local rooms (DMs if configured) and, at start, the
  local rooms that existed before, except those an admin removed it from.
  Only a real upgrade is followed: the successor's create event names the
  recorded room as its predecessor and was sent, on this homeserver, by the
  member who tombstoned the recorded room (who had the power to: the tombstone
  passed the room's auth rules). A tombstone pointing anywhere else is ignored
  and kept as an integrity event. An upgrade inherits its predecessor's
  recording; with `auto_join`, an invite of the bot into a direct chat by
  anyone but a server admin is refused unless DMs are recorded.
- Integrity: only Homeport sets the bot's display name and mark. Any member
  event of the bot in which they differ (a profile change through the admin
  API, a client logged in as the bot, an admin join) is rewritten to carry
  them before it is stored, and a profile change is set back; each attempt
  becomes an `org.homeport.audit.integrity` event in the room, sent by the bot,
  which members see and the audit bot records.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from homeport.synapse_module.audit_marks import (
    best_inviter,
    domain_of,
    is_joined,
    mark_changed,
    marked_content,
    not_local_message,
    upgrade_problem,
)
from homeport.synapse_module.audit_queries import (
    is_direct_txn,
    local_rooms_txn,
)
from homeport.synapse_module.audit_resources import membership_resource, original_resource
from homeport.synapse_module.config import AuditModuleConfig
from homeport.synapse_module.contract import (
    AUDIT_ADD_PATH,
    AUDIT_ORIGINAL_PATH,
    AUDIT_REMOVE_PATH,
    INTEGRITY_EVENT,
    MARK,
    NO_INVITER,
    NOT_LOCAL,
)

logger = logging.getLogger(__name__)

BACKFILL_DELAY_MS = 5_000
STORED_WAIT_S = 30.0  # how long an event that passed the rules may take to be stored


class AuditRules:
    """Registered by `HomeportModule` when the homeserver has an audit bot."""

    def __init__(self, config: AuditModuleConfig, api: Any) -> None:
        self._api = api
        self.bot = config.user_id
        self._displayname = config.displayname
        self._auto_join = config.auto_join == "local_rooms"
        self._include_dms = config.include_direct_messages
        self._adding: set[str] = set()  # rooms whose invite this module is sending
        # Rooms created from now on pass `on_create_room`; the backfill takes the older ones.
        self._started_ms = int(time.time() * 1000)
        api.register_third_party_rules_callbacks(
            check_event_allowed=self.check_event_allowed,
            on_profile_update=self.on_profile_update,
        )
        api.register_spam_checker_callbacks(
            user_may_join_room=self.user_may_join_room,
            federated_user_may_invite=self.federated_user_may_invite,
        )
        api.register_web_resource(AUDIT_ADD_PATH, membership_resource(api, self.add))
        api.register_web_resource(AUDIT_REMOVE_PATH, membership_resource(api, self.remove))
        api.register_web_resource(AUDIT_ORIGINAL_PATH, original_resource(api, self.bot))
        if self._auto_join:
            api.delayed_background_call(BACKFILL_DELAY_MS, self.backfill, desc="homeport_audit")

    # Where a room was created.

    async def room_home(self, room_id: str) -> str | None:
        state = await self._api.get_room_state(room_id, [("m.room.create", "")])
        create = state.get(("m.room.create", ""))
        return None if create is None else domain_of(create.sender)

    def _refuse(self, message: str, errcode: str = "M_FORBIDDEN", **fields: Any) -> Exception:
        from synapse.api.errors import SynapseError

        return SynapseError(403, message, errcode, additional_fields=fields or None)

    # Rules on events.

    async def check_event_allowed(
        self, event: Any, state_events: dict[tuple[str, str], Any]
    ) -> tuple[bool, dict[str, Any] | None]:
        if (
            # An upgrade is a room creation: the successor of a recorded room is
            # recorded too. The tombstone comes once the successor exists and its
            # creator is in it (an upgrade skips `on_create_room`).
            event.type == "m.room.tombstone"
            and isinstance(event.content.get("replacement_room"), str)
            and is_joined(state_events, self.bot)
        ):
            self._in_background(self._once_stored, event, self._follow_upgrade)
            return True, None
        if event.type != "m.room.member" or event.state_key != self.bot:
            return True, None
        await self._check_membership(event, state_events)
        membership = event.content.get("membership")
        if membership == "invite" and event.room_id not in self._adding:
            self._in_background(self._once_stored, event, self._accept)
        if membership != "join":
            return True, None
        before = state_events.get(("m.room.member", self.bot))
        content = marked_content(event.content, before, self._displayname)
        if not mark_changed(event.content, content):
            return True, None
        self._in_background(self._report_integrity, event.room_id, event.content, content)
        return True, {**event.get_dict(), "content": content}

    async def _check_membership(self, event: Any, state_events: dict[tuple[str, str], Any]) -> None:
        membership = event.content.get("membership")
        create = state_events.get(("m.room.create", ""))
        home = domain_of(create.sender) if create is not None else None
        if membership in ("invite", "join"):
            if home != self._api.server_name:
                raise self._refuse(
                    not_local_message(self.bot, home), NOT_LOCAL, creator_server=home
                )
            if membership == "invite" and not await self._may_add(event.sender, event.room_id):
                raise self._refuse(
                    f"Only server administrators add the audit bot {self.bot} to a room "
                    "(homeport audit add, the admin website, or an invite from an admin)."
                )
            if membership == "invite" and await self._direct_by_non_admin(event):
                raise self._refuse(
                    f"The audit bot {self.bot} does not record direct chats on this server "
                    "(include_direct_messages is off); only a server administrator can add it."
                )
        elif (
            membership in ("leave", "ban")
            and event.sender != self.bot
            and event.room_id not in self._adding  # this module's unban, before its invite
            and not await self._api.is_user_admin(event.sender)
        ):
            raise self._refuse(
                f"Only server administrators can remove the audit bot {self.bot} "
                "from a room it records."
            )

    async def _direct_by_non_admin(self, event: Any) -> bool:
        """With `auto_join`, anyone may invite the bot; into a direct chat only an admin."""
        if self._include_dms or event.room_id in self._adding:
            return False
        if not await self._api.run_db_interaction(
            "homeport_audit_is_direct", is_direct_txn, event.room_id
        ):
            return False
        return not await self._api.is_user_admin(event.sender)

    async def on_profile_update(
        self, user_id: str, profile: Any, by_admin: bool, _deactivation: bool
    ) -> None:
        """The bot's display name is Homeport's: a change is set back at once."""
        if user_id != self.bot or profile.display_name == self._displayname:
            return
        who = "a server admin (admin API)" if by_admin else "a session of the bot itself"
        logger.warning(
            "homeport: %s renamed the audit bot to %r; setting it back to %r",
            who,
            profile.display_name,
            self._displayname,
        )
        self._in_background(self._restore_displayname)

    async def _restore_displayname(self) -> None:
        from synapse.types import UserID

        try:
            await self._api.set_displayname(UserID.from_string(self.bot), self._displayname)
        except Exception as error:
            logger.warning("homeport: could not set the audit bot's name back: %s", error)

    async def _report_integrity(
        self, room_id: str, attempted: dict[str, Any], restored: dict[str, Any]
    ) -> None:
        """Tell the room (and so the audit record) what was undone."""
        await self._say_integrity(
            room_id,
            "Someone changed the audit bot's display name or recording mark in this room; "
            "Homeport restored them. Recording goes on.",
            attempted={"displayname": attempted.get("displayname"), MARK: attempted.get(MARK)},
            restored={"displayname": restored.get("displayname"), MARK: restored.get(MARK)},
        )

    async def _say_integrity(self, room_id: str, body: str, **fields: Any) -> None:
        try:
            await self._api.create_and_send_event_into_room(
                {
                    "type": INTEGRITY_EVENT,
                    "room_id": room_id,
                    "sender": self.bot,
                    "content": {"body": body, **fields},
                }
            )
        except Exception as error:  # e.g. the room does not let the bot send
            logger.warning("homeport: integrity event in %s not sent: %s", room_id, error)

    async def _may_add(self, inviter: str, room_id: str) -> bool:
        if room_id in self._adding or self._auto_join:
            return True
        return bool(await self._api.is_user_admin(inviter))

    async def user_may_join_room(self, user: str, room_id: str, is_invited: bool) -> Any:
        from synapse.api.errors import Codes
        from synapse.module_api import NOT_SPAM

        if user != self.bot:
            return NOT_SPAM
        home = await self.room_home(room_id)
        if home == self._api.server_name:
            return NOT_SPAM
        return Codes.FORBIDDEN, {"error": not_local_message(self.bot, home)}

    async def federated_user_may_invite(self, event: Any) -> Any:
        from synapse.api.errors import Codes
        from synapse.module_api import NOT_SPAM

        if event.state_key != self.bot:
            return NOT_SPAM
        stripped = event.unsigned.get("invite_room_state", [])
        creators = [s.get("sender") for s in stripped if s.get("type") == "m.room.create"]
        home = domain_of(creators[0]) if creators and isinstance(creators[0], str) else None
        logger.info("homeport: refused %s's invite of the audit bot", event.sender)
        return Codes.FORBIDDEN, {"error": not_local_message(self.bot, home)}

    # Following invites, upgrades and new rooms.
    #
    # Acted on once the event is stored, from a background task that
    # `check_event_allowed` starts (it sees every event a local user sends, which
    # is all the bot follows). Not from an `on_new_event` callback: with one
    # registered, Synapse reads the store before calling it, in the logging
    # context of a request that has usually finished by then, which logs
    # "Re-starting finished log context" for every event and misattributes
    # Synapse's metrics (element-hq/synapse#13090).

    def _in_background(self, func: Any, *args: Any) -> None:
        self._api.run_as_background_process("homeport_audit", func, *args)

    async def _once_stored(self, event: Any, then: Any) -> None:
        """`then(event)` once `event` is the room's current state; never if it is not
        stored within `STORED_WAIT_S` (refused later, or replaced)."""
        waited, step = 0.0, 0.05
        while waited < STORED_WAIT_S:
            state = await self._api.get_room_state(event.room_id, [(event.type, event.state_key)])
            stored = state.get((event.type, event.state_key))
            if stored is not None and stored.event_id == event.event_id:
                await then(event)
                return
            await self._api.sleep(step)
            waited, step = waited + step, min(step * 2, 1.0)

    async def _accept(self, invite: Any) -> None:
        room_id = invite.room_id
        by = "auto_join: local_rooms" if self._auto_join else invite.sender
        try:
            if await self._bot_membership(room_id) == "invite":
                await self._join(room_id, by)
        except Exception as error:  # logged: a background task has nobody to tell
            logger.warning("homeport: the audit bot could not join %s: %s", room_id, error)

    async def _follow_upgrade(self, tombstone: Any) -> None:
        """Into the successor of a recorded room, if it really is one (see `upgrade_problem`)."""
        successor = tombstone.content["replacement_room"]
        state = await self._api.get_room_state(successor, [("m.room.create", "")])
        problem = upgrade_problem(
            tombstone.room_id,
            tombstone.sender,
            state.get(("m.room.create", "")),
            self._api.server_name,
        )
        if problem is None:
            await self._follow(successor, f"{tombstone.sender} (upgrade of {tombstone.room_id})")
            return
        logger.warning(
            "homeport: the audit bot does not follow %s's tombstone of %s to %s: %s",
            tombstone.sender,
            tombstone.room_id,
            successor,
            problem,
        )
        await self._say_integrity(
            tombstone.room_id,
            f"The audit bot did not follow this room's tombstone to {successor}: {problem}.",
            tombstone_sender=tombstone.sender,
            replacement_room=successor,
        )

    async def _follow(self, room_id: str, by: str) -> None:
        try:
            await self.add(room_id, by)
        except Exception as error:
            logger.warning("homeport: the audit bot could not follow into %s: %s", room_id, error)

    async def backfill(self) -> None:
        """With `auto_join: local_rooms`: every local room created before the module started
        that the bot was never in (later ones it is invited to as they are created)."""
        rooms = await self._api.run_db_interaction(
            "homeport_audit_local_rooms",
            local_rooms_txn,
            self._api.server_name,
            self.bot,
            self._include_dms,
            self._started_ms,
        )
        logger.info("homeport: the audit bot joins %d local rooms (auto_join)", len(rooms))
        for room_id in rooms:
            await self._follow(room_id, "auto_join: local_rooms")

    def direct_message_wanted(self, request: dict[str, Any]) -> bool:
        """A DM is created `is_direct` with one other person; anything bigger is a group
        room, recorded whatever flag the client sets."""
        invited = len(request.get("invite", [])) + len(request.get("invite_3pid", []))
        direct = request.get("is_direct", False) is True and invited <= 1
        return self._include_dms or not direct

    async def on_create_room(self, request: dict[str, Any]) -> None:
        """With `auto_join: local_rooms`, the creator invites the bot with everyone else."""
        if self._auto_join and self.direct_message_wanted(request):
            invites = request.setdefault("invite", [])
            if self.bot not in invites:
                invites.append(self.bot)

    # Adding and removing.

    async def _bot_membership(self, room_id: str) -> str | None:
        state = await self._api.get_room_state(room_id, [("m.room.member", self.bot)])
        event = state.get(("m.room.member", self.bot))
        return None if event is None else str(event.content.get("membership"))

    async def _join(self, room_id: str, by: str) -> None:
        await self._api.update_room_membership(
            self.bot,
            self.bot,
            room_id,
            "join",
            content={"displayname": self._displayname, MARK: {"recording": True, "added_by": by}},
        )

    async def add(self, room_id: str, by: str) -> dict[str, Any]:
        """Invite (unless the room is public) and join the bot; refuse rooms created elsewhere."""
        from synapse.api.errors import NotFoundError

        state = await self._api.get_room_state(room_id)
        create = state.get(("m.room.create", ""))
        if create is None:
            raise NotFoundError(f"This homeserver is not in room {room_id}.")
        home = domain_of(create.sender)
        if home != self._api.server_name:
            raise self._refuse(not_local_message(self.bot, home), NOT_LOCAL, creator_server=home)
        result: dict[str, Any] = {"room_id": room_id, "creator_server": home, "inviter": None}
        membership = await self._bot_membership(room_id)
        if membership == "join":
            return {**result, "already": True}
        rule = state.get(("m.room.join_rules", ""))
        public = rule is not None and rule.content.get("join_rule") == "public"
        if membership != "invite" and (membership == "ban" or not public):
            inviter = best_inviter(state, self._api.is_mine, self.bot)
            if inviter is None:
                raise self._refuse(
                    "No member of this homeserver in the room has the power to invite the "
                    "audit bot; a room admin of this server must be a member.",
                    NO_INVITER,
                )
            reason = f"Audit recording switched on by {by}"
            self._adding.add(room_id)
            try:
                if membership == "ban":
                    await self._api.update_room_membership(
                        inviter, self.bot, room_id, "unban", content={"reason": reason}
                    )
                await self._api.update_room_membership(
                    inviter, self.bot, room_id, "invite", content={"reason": reason}
                )
            finally:
                self._adding.discard(room_id)
            result["inviter"] = inviter
        await self._join(room_id, by)
        logger.info("homeport: the audit bot now records %s (by %s)", room_id, by)
        return {**result, "already": False}

    async def remove(self, room_id: str, by: str) -> dict[str, Any]:
        if await self._bot_membership(room_id) != "join":
            return {"room_id": room_id, "already": True}
        await self._api.update_room_membership(
            self.bot,
            self.bot,
            room_id,
            "leave",
            content={
                "reason": f"Audit recording switched off by {by}",
                MARK: {"recording": False, "removed_by": by},
            },
        )
        logger.info("homeport: the audit bot stopped recording %s (by %s)", room_id, by)
        return {"room_id": room_id, "already": False}
