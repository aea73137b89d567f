"""What verify expects, derived from the policy alone: one table row per rule."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from homeport.config.loader import load_deployment_text
from homeport.config.policy import Policy
from homeport.config.starter import starter_text
from homeport.policy.surfaces import ProbeIds, expectations, ordered_pairs, publication_allowed
from tests.policies import STARTER_VISIBILITY

IDS = ProbeIds("@homeport-probe-abc-host:localhost:8449", "!room:localhost:8449")


def deployment(internal: str = "", external: str = "") -> str:
    def block(text: str) -> str:
        text = textwrap.dedent(text).strip()
        return "    policy:\n" + textwrap.indent(text, " " * 6) + "\n" if text else ""

    return (
        "homeservers:\n"
        "  internal:\n    server_name: localhost:8448\n    port: 8448\n"
        + block(internal)
        + "  external:\n    server_name: localhost:8449\n    port: 8449\n"
        + block(external)
    )


@dataclass(frozen=True)
class Row:
    name: str
    text: str
    viewer: str
    target: str
    expected: dict[str, str]  # only the surfaces this row is about


ALLOW_ALL = "room_list_publication_rules: [{action: allow}]"

ROWS = [
    *(
        Row(f"starter: {viewer} looks at {target}", starter_text(), viewer, target, surfaces)
        for (viewer, target), surfaces in STARTER_VISIBILITY.items()
    ),
    Row(
        "whitelist on one side closes both directions",
        deployment(
            "federation_domain_whitelist: [internal]",
            "allow_device_name_lookup_over_federation: true",
        ),
        "internal",
        "external",
        {"federation": "denied", "profile": "hidden", "device_names": "hidden"},
    ),
    Row(
        "whitelist seen from the other side",
        deployment("federation_domain_whitelist: [internal]"),
        "external",
        "internal",
        {"federation": "denied", "space_hierarchy": "hidden", "user_search": "hidden"},
    ),
    Row(
        "public rooms need the target's permission",
        deployment(external=ALLOW_ALL),
        "internal",
        "external",
        {"public_rooms": "hidden"},
    ),
    Row(
        "public rooms allowed and publishable",
        deployment(external=f"allow_public_rooms_over_federation: true\n{ALLOW_ALL}"),
        "internal",
        "external",
        {"public_rooms": "visible"},
    ),
    Row(
        "nobody may publish: nothing to see",
        deployment(external="allow_public_rooms_over_federation: true"),
        "internal",
        "external",
        {"public_rooms": "hidden"},
    ),
    Row(
        "room list search off on the target",
        deployment(
            external="allow_public_rooms_over_federation: true\n"
            f"enable_room_list_search: false\n{ALLOW_ALL}"
        ),
        "internal",
        "external",
        {"public_rooms": "hidden"},
    ),
    Row(
        "room list search off on the viewer",
        deployment(
            "enable_room_list_search: false",
            f"allow_public_rooms_over_federation: true\n{ALLOW_ALL}",
        ),
        "internal",
        "external",
        {"public_rooms": "hidden"},
    ),
    Row(
        "never federated target: directory and spaces hidden, joins refused",
        deployment(
            external="allow_public_rooms_over_federation: true\n"
            f"{ALLOW_ALL}\nrooms: {{federation: never}}"
        ),
        "internal",
        "external",
        {"public_rooms": "hidden", "space_hierarchy": "hidden", "join_nonfederated": "refused"},
    ),
    Row(
        "profile lookup off on the target",
        deployment(external="allow_profile_lookup_over_federation: false"),
        "internal",
        "external",
        {"profile": "hidden"},
    ),
    Row(
        "viewer limits profiles to people sharing a room",
        deployment(
            "limit_profile_requests_to_users_who_share_rooms: true\n"
            "require_auth_for_profile_requests: true"
        ),
        "internal",
        "external",
        {"profile": "hidden"},
    ),
    Row(
        "device names shown by the target",
        deployment(external="allow_device_name_lookup_over_federation: true"),
        "internal",
        "external",
        {"device_names": "visible"},
    ),
    Row(
        "search all users on the viewer",
        deployment("user_directory: {search_all_users: true}"),
        "internal",
        "external",
        {"user_search": "visible"},
    ),
    Row(
        "search all users, but remote users excluded",
        deployment("user_directory: {search_all_users: true, exclude_remote_users: true}"),
        "internal",
        "external",
        {"user_search": "hidden"},
    ),
    Row(
        "search all users, directory off",
        deployment("user_directory: {search_all_users: true, enabled: false}"),
        "internal",
        "external",
        {"user_search": "hidden"},
    ),
    Row(
        "search all users on the target changes nothing for the viewer",
        deployment(external="user_directory: {search_all_users: true}"),
        "internal",
        "external",
        {"user_search": "hidden"},
    ),
    Row(
        "both never federated: no room to share, nobody found",
        deployment(
            "user_directory: {search_all_users: true}\nrooms: {federation: never}",
            "rooms: {federation: never}",
        ),
        "internal",
        "external",
        {"user_search": "hidden"},
    ),
    Row(
        "one side never federated: the other side's rooms are shared",
        deployment("user_directory: {search_all_users: true}\nrooms: {federation: never}"),
        "internal",
        "external",
        {"user_search": "visible"},
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_expectation(row: Row) -> None:
    model, _ = load_deployment_text(row.text, Path("homeport.yaml"))
    got = expectations(model, row.viewer, row.target, IDS)
    assert {surface: got[surface] for surface in row.expected} == row.expected


def test_ordered_pairs_cover_both_directions() -> None:
    model, _ = load_deployment_text(starter_text(), Path("homeport.yaml"))
    assert ordered_pairs(model) == [("internal", "external"), ("external", "internal")]


@pytest.mark.parametrize(
    ("rules", "allowed"),
    [
        (None, False),
        ([], False),
        ([{"action": "allow"}], True),
        ([{"user_id": "@homeport-probe-*", "action": "deny"}, {"action": "allow"}], False),
        ([{"user_id": "@alice:*", "action": "allow"}], False),
        ([{"room_id": "!room:*", "action": "allow"}], True),
        ([{"alias": "#public-*", "action": "allow"}], False),  # no alias on the room
        ([{"alias": "*", "action": "deny"}, {"action": "allow"}], False),
    ],
)
def test_publication_rules_first_match_wins(
    rules: list[dict[str, str]] | None, allowed: bool
) -> None:
    policy = Policy.model_validate({"room_list_publication_rules": rules})
    assert publication_allowed(policy, IDS.host_user_id, IDS.public_room_id) is allowed
