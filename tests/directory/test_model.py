"""The directory as group sync sees it: finding the group a mapping names."""

from __future__ import annotations

import pytest

from homeport.config.groupsync import GroupRef
from homeport.directory.model import Directory, Group

GROUPS = "ou=groups,dc=example,dc=org"
DIRECTORY = Directory(
    (),
    (
        Group(f"cn=staff,{GROUPS}", "staff"),
        Group(f"cn=sales=emea,{GROUPS}", "sales=emea"),
        Group(f"cn=ops,ou=paris,{GROUPS}", "ops"),
        Group(f"cn=ops,ou=oslo,{GROUPS}", "ops"),
    ),
)


@pytest.mark.parametrize(
    ("ref", "found"),
    [
        (GroupRef("cn", "staff"), ["staff"]),
        (GroupRef("cn", " Staff "), ["staff"]),  # as directories compare a cn
        (GroupRef("cn", "sales=emea"), ["sales=emea"]),  # a cn holding '=' is still a cn
        (GroupRef("cn", "nobody"), []),
        (GroupRef("cn", "ops"), ["ops", "ops"]),  # ambiguous: group sync refuses it
        (GroupRef("cn", f"cn=staff,{GROUPS}"), []),  # no group has that cn
        (GroupRef("dn", f"cn=staff,{GROUPS}"), ["staff"]),
        (GroupRef("dn", "CN=Staff , OU=Groups,DC=example,DC=org"), ["staff"]),
        (GroupRef("dn", f"cn=sales=emea,{GROUPS}"), ["sales=emea"]),
        (GroupRef("dn", f"cn=ops,ou=oslo,{GROUPS}"), ["ops"]),  # a DN is never ambiguous
        (GroupRef("dn", "sales=emea"), []),  # a DN is looked up as a DN only
        (GroupRef("dn", "staff"), []),
    ],
    ids=str,
)
def test_a_group_is_found_by_the_kind_of_name_it_is_given(ref: GroupRef, found: list[str]) -> None:
    assert [group.cn for group in DIRECTORY.find_group(ref)] == found
