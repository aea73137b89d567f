"""What the status command and the Group sync page show of the mapping: each group
as people read it, whichever key the file names it by."""

from __future__ import annotations

from typing import Any

import pytest

from homeport.config.groupsync import GroupRef, GroupSync
from homeport.groupsync.overview import mapping_rows
from homeport.groupsync.run import group_refs

GROUPS = "ou=groups,dc=example,dc=org"


def sync(spaces: list[dict[str, Any]]) -> GroupSync:
    return GroupSync.model_validate(
        {
            "homeserver": "internal",
            "port": 8999,
            "ldap": {"uri": "ldap://127.0.0.1", "user_base": "ou=people", "group_base": GROUPS},
            "spaces": spaces,
        }
    )


@pytest.mark.parametrize(
    ("named", "group", "shown"),
    [
        ({"ldap_cn": "staff"}, GroupRef("cn", "staff"), "cn=staff"),
        ({"ldap_cn": "sales=emea"}, GroupRef("cn", "sales=emea"), "cn=sales=emea"),
        (
            {"ldap_dn": f"CN=Staff,{GROUPS}"},
            GroupRef("dn", f"CN=Staff,{GROUPS}"),
            f"CN=Staff,{GROUPS}",
        ),
    ],
)
def test_a_space_names_its_group_by_the_key_the_file_uses(
    named: dict[str, str], group: GroupRef, shown: str
) -> None:
    [space] = sync([{"name": "Staff", "alias": "staff", **named}]).spaces
    assert space.group == group
    [row] = mapping_rows([space])
    assert row.group == shown


def test_every_mapped_group_is_read_in_chain_power_level_groups_too() -> None:
    mapping = sync(
        [
            {
                "name": "Staff",
                "alias": "staff",
                "ldap_cn": "staff",
                "power_levels": {"admins": 100, f"cn=moderators,{GROUPS}": 50},
                "subspaces": [{"name": "EMEA", "alias": "emea", "ldap_cn": "sales=emea"}],
            }
        ]
    )
    # A power-level group is a bare name: a DN when it holds '=' (the file has no
    # other way to say), a cn otherwise.
    assert mapping.spaces[0].power_groups == {
        GroupRef("cn", "admins"): 100,
        GroupRef("dn", f"cn=moderators,{GROUPS}"): 50,
    }
    assert group_refs(mapping) == [
        GroupRef("cn", "staff"),
        GroupRef("cn", "admins"),
        GroupRef("dn", f"cn=moderators,{GROUPS}"),
        GroupRef("cn", "sales=emea"),
    ]
