"""Internal spaces: the care of the one-homeserver model, taken over inside Synapse.

`policy.rooms.internal_spaces` names spaces of this homeserver whose rooms never federate.
The internal rooms are those spaces and every room and subspace their `m.space.child`
events hold, recursively. The rules, for every user, server admins included:

- a room or subspace created in an internal room (`createRoom` with an `m.space.parent`
  in `initial_state`, as Element does), or created with an internal space's alias, is
  created non-federated (`m.federate: false`), whatever the client asked;
- an `m.space.child` that would bring a federated room (or a room this server cannot
  see) into an internal space is refused, and so is one that puts an internal space in
  a space that federates, or an `m.space.parent` naming an internal space from a
  federated room;
- another server's user is never invited into an internal room, nor let join or knock
  through this server (a non-federated room refuses them anyway; a federated one, there
  from before, is refused here; its other servers still admit their own users: the
  remedy is a non-federated replacement);
- no internal room is one Synapse describes to other servers: its room hierarchy API
  answers any server for a public, knocking or world-readable room, `m.federate` or
  not. A room created internal with such settings is created for the members of its
  space (invite-only for a space of its own) with history for members; changing an
  internal room to them, or adding such a room to an internal space, is refused;
- an upgrade of a federated room that sits in an internal space is refused: it would
  create another federated room. (A non-federated room's upgrade stays non-federated:
  Synapse copies `m.federate`.)

Every refusal is M_FORBIDDEN, in words a user understands. The internal rooms are read
afresh for each check from Synapse's own caches of the current state; the drift report
reads its tables in one transaction (`space_queries`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from homeport.synapse_module import space_queries

logger = logging.getLogger(__name__)

ADMIN_HINT = "a server admin can replace it with a non-federated room (Homeport's admin website)"


def _domain(user_id: str) -> str:
    return user_id.partition(":")[2]


class InternalSpaces:
    """Registered by `HomeportModule` when the homeserver has internal spaces."""

    def __init__(self, references: list[str], api: Any) -> None:
        self._api = api
        self._server = api.server_name
        self._references = list(references)
        self._aliases = [r for r in references if r.startswith("#")]
        self._unresolved: set[str] = set()  # aliases already said to be missing

    # What is internal: read afresh for every check, from the current state as Synapse
    # caches it (`get_partial_current_state_ids`, the event cache): kept right by Synapse
    # on every process, workers included, and free of database round trips once warm.
    # Checks run only where an internal room may be concerned (a room made in a space, a
    # space's child or parent, another server's member, a room opened up).

    async def _roots(self) -> set[str]:
        from synapse.api.errors import SynapseError

        found: set[str] = set()
        for reference in self._references:
            if reference.startswith("!"):
                found.add(reference)
                continue
            try:
                room_id, _servers = await self._api.lookup_room_alias(reference)
            except SynapseError:
                continue  # no room has that address yet
            found.add(room_id)
        return found

    async def _state(self, room_id: str, kinds: tuple[str, ...]) -> dict[tuple[str, str], Any]:
        """The room's current state events of `kinds` (none for a room not known here)."""
        store = self._api._store
        ids = await store.get_partial_current_state_ids(room_id)
        wanted = {key: event_id for key, event_id in ids.items() if key[0] in kinds}
        if not wanted:
            return {}
        events = await store.get_events(list(wanted.values()))
        return {key: events[e] for key, e in wanted.items() if e in events}

    async def _held(self, roots: set[str]) -> set[str]:
        """`roots` and every room and subspace they hold, recursively."""
        seen = set(roots)
        frontier = list(roots)
        while frontier and len(seen) < space_queries.MAX_INTERNAL_ROOMS:
            state = await self._state(frontier.pop(), ("m.space.child",))
            for (_kind, child), event in state.items():
                if child not in seen and space_queries.linked(event.content):
                    seen.add(child)
                    frontier.append(child)
        return seen

    async def internal_rooms(self) -> frozenset[str]:
        return frozenset(await self._held(await self._roots()))

    async def _undescribable(self, room_ids: set[str]) -> tuple[list[str], list[str]]:
        """Of `room_ids`: those that federate (or are not known here), those that are open
        to other servers' eyes."""
        federated, open_rooms = [], []
        kinds = ("m.room.create", "m.room.join_rules", "m.room.history_visibility")
        for room in sorted(room_ids):
            state = await self._state(room, kinds)
            create = state.get(("m.room.create", ""))
            if create is None or create.content.get("m.federate", True) is True:
                federated.append(room)
            if any(_opens(event) for event in state.values()):
                open_rooms.append(room)
        return federated, open_rooms

    async def report(self) -> dict[str, Any]:
        """What `homeport verify` and the website read: each reference and its room, and
        every room of the internal spaces with what drift needs of it."""
        resolved, rooms = await self._api.run_db_interaction(
            "homeport_internal_report", space_queries.describe, self._references, self._server
        )
        for reference, room in resolved.items():
            if room is None and reference not in self._unresolved:
                self._unresolved.add(reference)
                logger.info("homeport: internal space %s does not exist yet", reference)
        return {
            "spaces": [{"reference": ref, "room_id": room} for ref, room in resolved.items()],
            "rooms": [dataclasses.asdict(room) for room in rooms],
        }

    def _refuse(self, message: str) -> Exception:
        from synapse.api.errors import Codes, SynapseError

        return SynapseError(403, message, Codes.FORBIDDEN)

    # Room creation.

    async def on_create_room(self, request: dict[str, Any]) -> None:
        alias_name = request.get("room_alias_name")
        alias = f"#{alias_name}:{self._server}" if isinstance(alias_name, str) else None
        parents: set[str] = {
            str(entry.get("state_key"))
            for entry in request.get("initial_state") or []
            if isinstance(entry, dict)
            and entry.get("type") == "m.space.parent"
            and space_queries.linked(entry.get("content"))
        }
        # Only a room made in a space, or with an internal address, is asked about.
        internal_parents = sorted(parents & await self.internal_rooms()) if parents else []
        if alias not in self._aliases and not internal_parents:
            return
        content = request.setdefault("creation_content", {})
        if content.get("m.federate") is not False:
            logger.info("homeport: creating a non-federated room in an internal space")
        content["m.federate"] = False
        _keep_undescribed(request, internal_parents)

    async def user_may_create_room(self, user_id: str, room_config: dict[str, Any]) -> Any:
        """An upgrade (`creation_content.predecessor`) of a federated room in an internal
        space would create another federated room: refused."""
        from synapse.api.errors import Codes
        from synapse.module_api import NOT_SPAM

        creation = room_config.get("creation_content") or {}
        predecessor = (creation.get("predecessor") or {}).get("room_id")
        if creation.get("m.federate") is False or not isinstance(predecessor, str):
            return NOT_SPAM
        if predecessor not in await self.internal_rooms():
            return NOT_SPAM
        logger.info("homeport: refused %s's upgrade of %s (internal space)", user_id, predecessor)
        return Codes.FORBIDDEN, {
            "error": f"This room is in an internal space of {self._server} but federates "
            "with other servers; upgrading it would create another federated room. Instead, "
            f"{ADMIN_HINT}."
        }

    # Events.

    async def check_event_allowed(
        self, event: Any, state_events: dict[tuple[str, str], Any]
    ) -> tuple[bool, None]:
        kind = event.type
        if kind == "m.room.member":
            await self._check_member(event)
        elif kind == "m.room.third_party_invite":
            if event.room_id in await self.internal_rooms():
                raise self._refuse(
                    "This room belongs to an internal space: invitations by email or phone "
                    "are refused, since they could bring in a user of another server."
                )
        elif kind == "m.space.child" and space_queries.linked(event.content):
            await self._check_child(event, state_events)
        elif kind == "m.space.parent" and space_queries.linked(event.content):
            await self._check_parent(event, state_events)
        elif _opens(event) and event.room_id in await self.internal_rooms():
            raise self._refuse(
                "This room belongs to an internal space: with that setting Synapse would "
                "describe it (name, topic, members, rooms) to any server that asks. Use "
                '"space members" or invite-only, and history for members only.'
            )
        return True, None

    async def _check_parent(self, event: Any, state_events: dict[tuple[str, str], Any]) -> None:
        # A non-federated room may name any parent (the rooms made in a space among them).
        if _federates(state_events) and event.state_key in await self.internal_rooms():
            raise self._refuse(
                f"{event.state_key} is an internal space of {self._server}, and this room "
                "federates with other servers: it cannot name that space as its parent. "
                "Create the room in the space instead: rooms made there never federate."
            )

    async def _check_member(self, event: Any) -> None:
        membership = event.content.get("membership")
        user = event.state_key
        if membership not in ("invite", "join", "knock") or _domain(user) == self._server:
            return
        if event.room_id in await self.internal_rooms():
            raise self._refuse(
                f"This room belongs to an internal space of {self._server}: users of other "
                f"servers, such as {user}, cannot be invited or join."
            )

    async def _check_child(self, event: Any, state_events: dict[tuple[str, str], Any]) -> None:
        child, space = event.state_key, event.room_id
        internal = await self.internal_rooms()
        if space in internal:
            federated, open_rooms = await self._undescribable(await self._held({child}))
            if federated:
                what = (
                    f"{child} federates with other servers, or this server cannot see it"
                    if federated == [child]
                    else f"{child} holds {len(federated)} rooms that federate with other servers"
                )
                raise self._refuse(
                    f"This is an internal space of {self._server}, whose rooms never "
                    f"federate: {what}. Create the room in the space instead (rooms made "
                    f"there are non-federated), or {ADMIN_HINT}."
                )
            if open_rooms:
                raise self._refuse(
                    f"{child} is open to anyone (its join rule or history visibility), so "
                    "Synapse would describe it to any server that asks once it is in this "
                    'internal space. Make it "space members" or invite-only, with history '
                    "for members only, first."
                )
            return
        if child in internal and _federates(state_events):
            raise self._refuse(
                f"{child} is an internal space of {self._server}, and this space federates "
                "with other servers: their users would see the internal space listed. Keep "
                "internal spaces in internal spaces only."
            )


def _opens(event: Any) -> bool:
    """A join rule or history visibility that would have Synapse describe the room."""
    if event.type == "m.room.join_rules":
        return bool(event.content.get("join_rule") in space_queries.OPEN_JOIN_RULES)
    if event.type == "m.room.history_visibility":
        return bool(event.content.get("history_visibility") == space_queries.OPEN_HISTORY)
    return False


def _keep_undescribed(request: dict[str, Any], parents: list[str]) -> None:
    """A room created internal is not one that Synapse describes to other servers: a
    public or knocking room becomes one for the members of its internal space (invite-only
    without one: the space itself), history readable by anyone becomes members-only."""
    state = [e for e in request.get("initial_state") or [] if isinstance(e, dict)]
    rules = [e for e in state if e.get("type") == "m.room.join_rules"]
    rule = rules[-1].get("content", {}).get("join_rule") if rules else None
    public_preset = request.get("preset") == "public_chat" or (
        request.get("preset") is None and request.get("visibility") == "public"
    )
    if rule in space_queries.OPEN_JOIN_RULES or (rule is None and public_preset):
        state = [e for e in state if e.get("type") != "m.room.join_rules"]
        if parents:
            allow = [{"type": "m.room_membership", "room_id": parent} for parent in parents]
            content: dict[str, Any] = {"join_rule": "restricted", "allow": allow}
        else:
            content = {"join_rule": "invite"}
        state.append({"type": "m.room.join_rules", "state_key": "", "content": content})
    for entry in state:
        if entry.get("type") == "m.room.history_visibility" and (
            entry.get("content", {}).get("history_visibility") == space_queries.OPEN_HISTORY
        ):
            entry["content"] = {"history_visibility": "shared"}
    request["initial_state"] = state


def _federates(state_events: dict[tuple[str, str], Any]) -> bool:
    create = state_events.get(("m.room.create", ""))
    return create is None or create.content.get("m.federate", True) is True
