"""Pieces at the edges of group sync: Synapse's state read, the executor's order, and
waiting out Synapse's rate limits (the service account is exempt from them, so no live
Synapse answers 429 to it; the retry rule is tested on its own)."""

from __future__ import annotations

import time

import pytest

from homeport.groupsync.apply import across_rooms
from homeport.groupsync.matrix_state import room_state
from homeport.groupsync.plan import Action, Member
from homeport.synapse.api import SynapseApiError
from homeport.synapse.spaces_api import RATE_LIMIT_TRIES, StateEvent, rate_limited


def test_room_state_reads_members_power_and_children() -> None:
    state = room_state(
        "!s",
        [
            StateEvent("m.room.member", "@a:hs", "@a:hs", {"membership": "join"}),
            StateEvent("m.room.member", "@b:hs", "@homeport:hs", {"membership": "leave"}),
            StateEvent("m.room.member", "@c:hs", "@c:hs", {"membership": "nonsense"}),
            StateEvent(
                "m.room.power_levels",
                "",
                "@homeport:hs",
                {"users": {"@a:hs": 100, "@x:hs": "50", "@y:hs": True}, "users_default": 10},
            ),
            StateEvent("m.space.child", "!child", "@homeport:hs", {"via": ["hs"]}),
            StateEvent("m.space.child", "!gone", "@homeport:hs", {}),  # removed child
        ],
    )
    assert state.members == {
        "@a:hs": Member("join", "@a:hs"),
        "@b:hs": Member("leave", "@homeport:hs"),
    }
    # Levels that are not integers count as 0, as Synapse's auth rules read them here.
    assert state.power_users == {"@a:hs": 100, "@x:hs": 0, "@y:hs": 0}
    assert state.users_default == 10
    assert state.children == frozenset({"!child"})


def test_concurrent_work_spreads_over_rooms() -> None:
    actions = [Action("join", room, f"@{n}:hs") for room in ("a", "b", "c") for n in range(3)]
    actions = actions[:7]  # rooms of unequal length
    order = [(a.room, a.user) for a in across_rooms(actions)]
    assert order == [
        ("a", "@0:hs"),
        ("b", "@0:hs"),
        ("c", "@0:hs"),
        ("a", "@1:hs"),
        ("b", "@1:hs"),
        ("a", "@2:hs"),
        ("b", "@2:hs"),
    ]
    assert across_rooms([]) == []


async def test_rate_limited_calls_wait_as_long_as_synapse_asks() -> None:
    answers: list[SynapseApiError | str] = [
        SynapseApiError(429, "M_LIMIT_EXCEEDED", "Too Many Requests", retry_after_ms=300),
        "done",
    ]
    calls: list[float] = []

    async def call() -> str:
        calls.append(time.monotonic())
        answer = answers.pop(0)
        if isinstance(answer, SynapseApiError):
            raise answer
        return answer

    assert await rate_limited(call) == "done"
    assert calls[1] - calls[0] >= 0.3


async def test_other_errors_and_endless_limits_are_not_retried_forever() -> None:
    async def forbidden() -> None:
        raise SynapseApiError(403, "M_FORBIDDEN", "no")

    with pytest.raises(SynapseApiError, match="M_FORBIDDEN"):
        await rate_limited(forbidden)
    tries = 0

    async def always_limited() -> None:
        nonlocal tries
        tries += 1
        raise SynapseApiError(429, "M_LIMIT_EXCEEDED", "slow down", retry_after_ms=1)

    with pytest.raises(SynapseApiError, match="M_LIMIT_EXCEEDED"):
        await rate_limited(always_limited)
    assert tries == RATE_LIMIT_TRIES
