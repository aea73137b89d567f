"""The replacement of a federated room of an internal space, as a `createRoom` request."""

from __future__ import annotations

from homeport.spaces.replace import creators, replacement_body
from homeport.synapse.spaces_api import StateEvent

SERVER = "hs.example"
ADMIN = f"@admin:{SERVER}"


def _state(**extra: dict[str, object]) -> list[StateEvent]:
    events = [
        StateEvent("m.room.create", "", f"@dana:{SERVER}", {"room_version": "12"}),
        StateEvent("m.room.name", "", f"@dana:{SERVER}", {"name": "Old"}),
        StateEvent("m.room.topic", "", f"@dana:{SERVER}", {"topic": "plans"}),
        StateEvent("m.room.encryption", "", f"@dana:{SERVER}", {"algorithm": "m.megolm.v1"}),
        StateEvent(
            "m.room.power_levels",
            "",
            f"@dana:{SERVER}",
            {
                "users": {f"@mod:{SERVER}": 50, "@bob:elsewhere.example": 50, ADMIN: 100},
                "events_default": 0,
            },
        ),
    ]
    events += [StateEvent(kind, "", f"@dana:{SERVER}", content) for kind, content in extra.items()]
    return events


def test_the_successor_is_non_federated_in_the_space_and_names_its_predecessor() -> None:
    body = replacement_body(_state(), "!old", "!space", SERVER, ADMIN)
    assert body["creation_content"] == {"m.federate": False, "predecessor": {"room_id": "!old"}}
    assert (body["name"], body["topic"]) == ("Old", "plans")
    state = {(e["type"], e["state_key"]): e["content"] for e in body["initial_state"]}
    assert state[("m.space.parent", "!space")] == {"via": [SERVER]}
    assert state[("m.room.join_rules", "")] == {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": "!space"}],
    }
    assert state[("m.room.encryption", "")] == {"algorithm": "m.megolm.v1"}
    # This server's moderators keep their power; other servers' and the creator do not
    # appear (room version 12 keeps creators out of the map).
    assert body["power_level_content_override"] == {
        "events_default": 0,
        "users": {f"@mod:{SERVER}": 50},
    }


def test_history_open_to_anyone_is_not_carried_over() -> None:
    open_history = _state(**{"m.room.history_visibility": {"history_visibility": "world_readable"}})
    kinds = [
        e["type"]
        for e in replacement_body(open_history, "!o", "!s", SERVER, ADMIN)["initial_state"]
    ]
    assert "m.room.history_visibility" not in kinds
    shared = _state(**{"m.room.history_visibility": {"history_visibility": "joined"}})
    state = replacement_body(shared, "!o", "!s", SERVER, ADMIN)["initial_state"]
    assert {
        "type": "m.room.history_visibility",
        "state_key": "",
        "content": {"history_visibility": "joined"},
    } in state


def test_creators_include_room_version_12s_additional_ones() -> None:
    state = [
        StateEvent(
            "m.room.create",
            "",
            f"@dana:{SERVER}",
            {"additional_creators": ["@erin:hs.example", 7]},
        )
    ]
    assert creators(state) == [f"@dana:{SERVER}", "@erin:hs.example"]
    assert creators([]) == []
