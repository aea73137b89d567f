"""The planner, table-driven: each case is a named file in cases/ holding the mapping,
the directory, the Matrix state, group sync's history and the expected actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homeport.config.groupsync import GroupSync
from homeport.directory.model import Directory, Group, Person
from homeport.groupsync.desired import desired_state
from homeport.groupsync.plan import (
    Action,
    History,
    Managed,
    MatrixState,
    Member,
    RoomState,
    Rules,
    UserState,
    plan,
)

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))
SERVER = "hs"
SERVICE = "@homeport:hs"


def _directory(data: dict[str, Any]) -> Directory:
    people = [
        Person(f"uid={uid},ou=people,dc=example,dc=org", uid, name, f"{uid}@example.org", uid)
        for uid, name in (data.get("people") or {}).items()
    ]
    groups = []
    for cn, spec in (data.get("groups") or {}).items():
        spec = spec or {}

        def dn(name: str) -> str:
            if name in (data.get("groups") or {}):
                return f"cn={name},ou=groups,dc=example,dc=org"
            return f"uid={name},ou=people,dc=example,dc=org"

        groups.append(
            Group(
                f"cn={cn},ou=groups,dc=example,dc=org",
                cn,
                frozenset(dn(m) for m in spec.get("member", [])),
                frozenset(spec.get("memberUid", [])),
                None if "resolved" not in spec else frozenset(dn(m) for m in spec["resolved"]),
            )
        )
    return Directory(tuple(people), tuple(groups))


def _member(value: str | list[str], user_id: str) -> Member:
    if isinstance(value, str):
        return Member(value, user_id)  # type: ignore[arg-type]
    return Member(value[0], value[1])  # type: ignore[arg-type]


def _matrix(data: dict[str, Any]) -> MatrixState:
    rooms = {
        alias: RoomState(
            room["room_id"],
            {u: _member(v, u) for u, v in (room.get("members") or {}).items()},
            room.get("power") or {},
            room.get("users_default", 0),
            frozenset(room.get("children") or []),
        )
        for alias, room in (data.get("rooms") or {}).items()
    }
    # [name, deactivated, directory]; an account is the directory's unless a case says not.
    users = {
        user_id: UserState(*value) if isinstance(value, list) else UserState(value)
        for user_id, value in (data.get("users") or {}).items()
    }
    users = {
        user_id: user
        if isinstance(value, list) and len(value) > 2
        else UserState(user.displayname, user.deactivated, True)
        for (user_id, user), value in zip(
            users.items(), (data.get("users") or {}).values(), strict=True
        )
    }
    return MatrixState(rooms, users)


def _history(data: dict[str, Any]) -> History:
    return {
        room_id: {user_id: Managed(level) for user_id, level in users.items()}
        for room_id, users in (data or {}).items()
    }


def compact(action: Action) -> str:
    parts: list[str] = [action.kind]
    if action.room:
        parts.append(action.room)
    if action.user:
        parts.append(action.user)
    if action.value is not None or action.kind == "set_power":
        parts.append(str(action.value))
    return " ".join(parts)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    sync = GroupSync.model_validate(
        {
            "homeserver": "internal",
            "port": 8999,
            "ldap": {"uri": "ldap://127.0.0.1", "user_base": "ou=people", "group_base": "ou=g"},
            "spaces": case["mapping"],
            **(case.get("settings") or {}),
        }
    )
    desired = desired_state(sync, _directory(case["directory"]), SERVER, ("audit",))
    rules = Rules(SERVICE, tuple(sync.never_remove), sync.max_removal_share)
    result = plan(
        desired,
        _matrix(case.get("matrix") or {}),
        _history(case.get("history")),
        rules,
        case.get("only"),
        case.get("provisioned") or (),
    )
    expect = case["expect"]
    assert list(result.conflicts) == expect.get("conflicts", [])
    assert [compact(a) for a in result.actions] == expect.get("actions", [])
    assert [g.room for g in result.guards] == expect.get("guarded", [])
    assert [compact(a) for a in result.applicable(force=False)] == expect.get(
        "applied_unforced", expect.get("actions", [])
    )
    for text in expect.get("notes", []):
        assert any(text in note for note in result.notes), (text, result.notes)
    for line, why in (expect.get("why") or {}).items():
        assert [a.why for a in result.actions if compact(a) == line] == [why], line
    if "no_notes" in expect:
        assert result.notes == ()


def test_cases_exist() -> None:
    assert len(CASES) >= 12
