"""The Policy page says what verify expects: every policy combination, through both.

For each combination the page's statements (homeport.policy.statements) are
compared with verify's own expectations (homeport.policy.surfaces), for both
directions between the two homeservers; the "server outside this
deployment" statements are compared with a real third homeserver of the file
that runs Synapse's defaults and is on nobody's whitelist.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment_text
from homeport.config.policy import Policy
from homeport.config.starter import starter_text
from homeport.policy.statements import Perspective, policy_view
from homeport.policy.surfaces import SURFACES, expectations

BASE, _ = load_deployment_text(
    starter_text()
    + "  outsider:\n    server_name: elsewhere.example.org:8448\n"
    + "    port: 8448\n    address: 127.0.0.2\n",
    Path("homeport.yaml"),
)

DIRECTORY = [
    {"enabled": enabled, "search_all_users": everyone, "exclude_remote_users": local}
    for enabled, everyone, local in itertools.product([True, False], repeat=3)
]
PUBLICATION: list[list[dict[str, str]] | None] = [
    None,
    [{"action": "allow"}],
    [{"action": "deny"}, {"action": "allow"}],
    [{"user_id": "@nobody:*", "action": "deny"}, {"action": "allow"}],
]


def policies(name: str) -> Iterator[dict[str, Any]]:
    """Every combination of the settings that an expectation reads."""
    for (
        whitelist,
        public_rooms,
        room_list,
        publication,
        profile,
        device_names,
        directory,
        limited,
        rooms,
    ) in itertools.product(
        [None, ["internal", "external"], [name]],
        [True, False],
        [True, False],
        PUBLICATION,
        [True, False],
        [True, False],
        DIRECTORY,
        [True, False],
        ["never", "creator_choice"],
    ):
        yield {
            "federation_domain_whitelist": whitelist,
            "allow_public_rooms_over_federation": public_rooms,
            "enable_room_list_search": room_list,
            "room_list_publication_rules": publication,
            "allow_profile_lookup_over_federation": profile,
            "allow_device_name_lookup_over_federation": device_names,
            "user_directory": directory,
            "limit_profile_requests_to_users_who_share_rooms": limited,
            "require_auth_for_profile_requests": limited,
            "rooms": {"federation": rooms},
        }


def with_policy(name: str, policy: dict[str, Any]) -> Deployment:
    homeservers = dict(BASE.homeservers)
    homeservers[name] = homeservers[name].model_copy(
        update={"policy": Policy.model_validate(policy)}
    )
    return BASE.model_copy(update={"homeservers": homeservers})


def assert_says_what_verify_expects(deployment: Deployment, name: str) -> None:
    view = policy_view(deployment, name)
    peers = [n for n in deployment.homeservers if n not in (name, "outsider")]

    def values(perspective: Perspective) -> dict[str, str]:
        return {s.surface: s.value for s in perspective.statements}

    by_title = {p.title: p for p in view}
    for peer in peers:
        for viewer, target in ((peer, name), (name, peer)):
            perspective = by_title[f"What users of {viewer} see of {target}"]
            assert values(perspective) == expectations(deployment, viewer, target, None)
            for statement, surface in zip(perspective.statements, SURFACES, strict=True):
                words = surface.sentences[statement.value].format(viewer=viewer, target=target)
                assert statement.text == words[:1].upper() + words[1:]
    outside = by_title[f"What users of a server outside this deployment see of {name}"]
    assert values(outside) == expectations(deployment, "outsider", name, None)


@pytest.mark.parametrize("name", ["internal", "external"])
def test_every_policy_combination_reads_as_verify_expects(name: str) -> None:
    checked = 0
    for policy in policies(name):
        deployment = with_policy(name, policy)
        # The page of the changed homeserver and the page of its peer.
        assert_says_what_verify_expects(deployment, name)
        assert_says_what_verify_expects(
            deployment, "external" if name == "internal" else "internal"
        )
        checked += 1
    assert checked == 3 * 2 * 2 * 4 * 2 * 2 * 8 * 2 * 2


def test_the_starter_page_in_words() -> None:
    """What an administrator reads on internal's Policy page for the starter file."""
    model, _ = load_deployment_text(starter_text(), Path("homeport.yaml"))
    texts = {p.title: [s.text for s in p.statements] for p in policy_view(model, "internal")}
    assert (
        "Users of external cannot look up the profiles of internal's users they share no "
        "room with." in texts["What users of external see of internal"]
    )
    assert (
        "Users of internal see the rooms published in external's room directory."
        in texts["What users of internal see of external"]
    )
    assert (
        "A server outside this deployment and internal do not federate: each refuses the other."
        in texts["What users of a server outside this deployment see of internal"]
    )


def test_user_search_is_not_promised_when_remote_users_are_excluded() -> None:
    """The disagreement this module was written for: search_all_users with
    exclude_remote_users finds no remote user, and a disabled directory finds nobody."""
    for directory in (
        {"search_all_users": True, "exclude_remote_users": True},
        {"search_all_users": True, "enabled": False},
    ):
        deployment = with_policy(
            "internal",
            {"user_directory": directory, "federation_domain_whitelist": None},
        )
        view = {p.title: p for p in policy_view(deployment, "internal")}
        search = next(
            s
            for s in view["What users of internal see of external"].statements
            if s.surface == "user_search"
        )
        assert search.value == "hidden"
        assert "do not find" in search.text
