"""Group sync under internal spaces: the rooms it creates there are non-federated, since
the Homeport module refuses a federated room as an internal space's child."""

from __future__ import annotations

from homeport.groupsync.desired import DesiredRoom, DesiredState, internal_aliases
from homeport.synapse.spaces_api import create_room_body

SERVER = "hs.example"


def _room(alias: str, parent: str | None, space: bool = False) -> DesiredRoom:
    return DesiredRoom(alias, alias.title(), space, parent, {}, {})


DESIRED = DesiredState(
    {
        "staff": _room("staff", None, space=True),
        "team": _room("team", "staff", space=True),
        "general": _room("general", "team"),
        "lobby": _room("lobby", "outer"),
        "outer": _room("outer", None, space=True),
    },
    {},
    (),
)


def test_a_mapped_space_listed_as_internal_takes_its_whole_subtree() -> None:
    found = internal_aliases(DESIRED, SERVER, [f"#staff:{SERVER}", "!unrelated"])
    assert found == {"staff", "team", "general"}
    assert internal_aliases(DESIRED, SERVER, [f"#team:{SERVER}"]) == {"team", "general"}
    assert internal_aliases(DESIRED, SERVER, []) == set()
    assert internal_aliases(DESIRED, SERVER, ["#staff:elsewhere.example"]) == set()


def test_the_rooms_it_creates_there_ask_for_no_federation() -> None:
    body = create_room_body("general", "General", space=False, federate=False)
    assert body["creation_content"] == {"m.federate": False}
    space = create_room_body("team", "Team", space=True, federate=False)
    assert space["creation_content"] == {"type": "m.space", "m.federate": False}
    assert "creation_content" not in create_room_body("outer", "Outer", space=False)
