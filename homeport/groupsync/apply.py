"""Carry out a plan against Synapse: phase by phase, concurrently within a phase.

A failed action is recorded with Synapse's answer and the rest go on; every
outcome is written to the history as it happens. Applying the same plan
twice changes nothing the second time: the planner only plans differences,
and each action here tolerates finding its work already done.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from homeport.groupsync.history import GroupSyncHistory, Outcome
from homeport.groupsync.plan import PHASES, Action
from homeport.synapse.api import SynapseApiError
from homeport.synapse.spaces_api import SpacesApi

CONCURRENT_WRITES = 8
# Outcomes reach the store in batches, off the event loop: at most this many, or
# this old. A run cut short loses at most that much of its history; what it
# forgets having added, it never removes (the safe side).
SAVE_EVERY = 200
SAVE_SECONDS = 1.0


@dataclass
class Totals:
    applied: int = 0
    failed: list[tuple[Action, str]] = field(default_factory=list)
    held: int = 0


def across_rooms(actions: list[Action]) -> list[Action]:
    """One room's turn after another's: Synapse handles a room's joins one at a time,
    so concurrent work must spread over rooms to run concurrently at all."""
    by_room: dict[str | None, list[Action]] = {}
    for action in actions:
        by_room.setdefault(action.room, []).append(action)
    queues = list(by_room.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


class RoomNotReady(Exception):
    """An action needs a room whose creation failed earlier in the run."""


class Executor:
    def __init__(
        self,
        api: SpacesApi,
        history: GroupSyncHistory,
        run_id: int,
        room_ids: dict[str, str],
        on_done: Callable[[Action, bool], None] | None = None,
        internal: frozenset[str] = frozenset(),
    ) -> None:
        self._api = api
        self._internal = internal  # aliases of rooms to create non-federated
        self._history = history
        self._run_id = run_id
        self.room_ids = dict(room_ids)  # alias -> room ID, growing as rooms are created
        self._on_done = on_done
        self._limit = asyncio.Semaphore(CONCURRENT_WRITES)
        self.outcome = Totals()
        self._unsaved: list[Outcome] = []
        self._saved_at = time.monotonic()

    def _room(self, alias: str | None) -> str:
        if alias is None or alias not in self.room_ids:
            raise RoomNotReady(f"room #{alias} does not exist (its creation failed)")
        return self.room_ids[alias]

    def _done(self, action: Action, error: str | None) -> None:
        room_id = self.room_ids.get(action.room) if action.room else None
        if action.kind == "link_child" and isinstance(action.value, str):
            room_id = self.room_ids.get(action.value)
        result = "ok" if error is None else "failed"
        self._unsaved.append(Outcome(action, room_id, result, error or ""))
        if error is None:
            self.outcome.applied += 1
        else:
            self.outcome.failed.append((action, error))
        if self._on_done is not None:
            self._on_done(action, error is None)

    async def _create(self, action: Action) -> None:
        assert action.room is not None
        try:
            room_id = await self._api.create(
                action.room,
                str(action.value),
                action.kind == "create_space",
                federate=action.room not in self._internal,
            )
        except SynapseApiError as error:
            if error.errcode != "M_ROOM_IN_USE":
                raise
            # Created meanwhile (another run, a person): the alias is the identity.
            found = await self._api.resolve(action.room)
            if found is None:
                raise
            room_id = found
        self.room_ids[action.room] = room_id

    async def _provision(self, action: Action) -> None:
        assert action.user is not None
        try:
            await self._api.provision(
                action.user, None if action.value is None else str(action.value)
            )
        except SynapseApiError as error:
            if error.errcode != "M_USER_IN_USE":
                raise
            # Created meanwhile (another run, a person): done, once Synapse shows the account.
            # Its display name, if another, is the next run's to set.
            if await self._api.user(action.user) is None:
                raise

    async def _join(self, action: Action) -> None:
        assert action.user is not None
        room_id = self._room(action.room)
        try:
            await self._api.join(room_id, action.user)
        except SynapseApiError as error:
            if error.status != 403:
                raise
            # Synapse refuses to join someone who is in the room already (they joined by
            # themselves since the plan was made): done, once the room says so.
            if await self._api.membership(room_id, action.user) != "join":
                raise

    async def _link(self, action: Action) -> None:
        parent = self._room(action.room)
        child = self._room(str(action.value))
        via = {"via": [self._api.server_name]}
        await self._api.put_state(parent, "m.space.child", child, {**via, "suggested": True})
        await self._api.put_state(child, "m.space.parent", parent, {**via, "canonical": True})

    async def _one(self, action: Action) -> None:
        if action.kind in ("create_space", "create_room"):
            await self._create(action)
        elif action.kind == "link_child":
            await self._link(action)
        elif action.kind == "provision_user":
            await self._provision(action)
        elif action.kind == "link_user":
            assert action.user is not None
            await self._api.link(action.user)
        elif action.kind == "set_displayname":
            assert action.user is not None
            await self._api.set_displayname(action.user, str(action.value))
        elif action.kind == "join":
            await self._join(action)
        elif action.kind == "kick":
            assert action.user is not None
            reason = f"Group sync: {action.why}" if action.why else "Group sync"
            await self._api.kick(self._room(action.room), action.user, reason)
        else:
            raise AssertionError(f"unknown action {action.kind}")

    async def _power(self, alias: str, actions: list[Action]) -> None:
        """All of a room's level changes in one power-levels event."""
        room_id = self._room(alias)
        content = dict(await self._api.get_state(room_id, "m.room.power_levels"))
        users = dict(content.get("users") or {})
        for action in actions:
            assert action.user is not None
            if action.value is None:
                users.pop(action.user, None)
            else:
                users[action.user] = action.value
        content["users"] = users
        await self._api.put_state(room_id, "m.room.power_levels", "", content)

    async def _guarded(self, work: Callable[[], Awaitable[None]], actions: list[Action]) -> None:
        error: str | None = None
        async with self._limit:
            try:
                await work()
            except (SynapseApiError, RoomNotReady, httpx.HTTPError) as failure:
                error = str(failure) or type(failure).__name__
        for action in actions:
            self._done(action, error)
        await self._save_now_and_then()

    async def _save_now_and_then(self) -> None:
        if len(self._unsaved) >= SAVE_EVERY or time.monotonic() - self._saved_at > SAVE_SECONDS:
            await self._save()

    async def apply(self, actions: Sequence[Action], held: Sequence[Action] = ()) -> Totals:
        for action in held:
            self._unsaved.append(Outcome(action, self.room_ids.get(action.room or ""), "held"))
            self.outcome.held += 1
        for kinds in PHASES:
            batch = [a for a in actions if a.kind in kinds]
            if not batch:
                continue
            if kinds == ("set_power",):
                by_room: dict[str, list[Action]] = {}
                for action in batch:
                    assert action.room is not None
                    by_room.setdefault(action.room, []).append(action)
                tasks = [
                    self._guarded(functools.partial(self._power, alias, group), group)
                    for alias, group in by_room.items()
                ]
            else:
                tasks = [
                    self._guarded(functools.partial(self._one, action), [action])
                    for action in across_rooms(batch)
                ]
            await asyncio.gather(*tasks)
            await self._save()
        await self._save()
        return self.outcome

    async def _save(self) -> None:
        """Write what came of the actions so far, off the event loop, in one transaction."""
        outcomes, self._unsaved = self._unsaved, []
        self._saved_at = time.monotonic()
        if outcomes:
            await asyncio.to_thread(self._history.record_many, self._run_id, outcomes)
