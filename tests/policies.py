"""Random visibility policies that lint accepts, for tests and the benchmark."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from homeport.config.loader import load_deployment_text
from homeport.policy.lint import has_errors, lint

# What the starter file's policy lets each server's users see of the other: the
# expectation tests derive it from the policy, the end-to-end test observes it.
STARTER_VISIBILITY: dict[tuple[str, str], dict[str, str]] = {
    ("internal", "external"): {
        "federation": "allowed",
        "public_rooms": "visible",
        "space_hierarchy": "visible",
        "profile": "visible",
        "device_names": "hidden",
        "user_search": "hidden",
        "join_nonfederated": "refused",
    },
    ("external", "internal"): {
        "federation": "allowed",
        "public_rooms": "hidden",
        "space_hierarchy": "hidden",
        "profile": "hidden",
        "device_names": "hidden",
        "user_search": "hidden",
        "join_nonfederated": "refused",
    },
}


def random_policy(rng: random.Random, name: str, others: list[str]) -> dict[str, Any]:
    """One homeserver's policy, every setting drawn at random."""
    policy: dict[str, Any] = {
        "allow_public_rooms_over_federation": rng.random() < 0.5,
        "enable_room_list_search": rng.random() < 0.8,
        "allow_profile_lookup_over_federation": rng.random() < 0.5,
        "allow_device_name_lookup_over_federation": rng.random() < 0.5,
        "user_directory": {
            "enabled": rng.random() < 0.8,
            "search_all_users": rng.random() < 0.5,
            "exclude_remote_users": rng.random() < 0.3,
            "prefer_local_users": rng.random() < 0.5,
        },
        "rooms": {"federation": rng.choice(["never", "creator_choice"])},
    }
    whitelist = rng.choice(["open", "all", "self", "none"])
    if whitelist == "all":
        policy["federation_domain_whitelist"] = [name, *others]
    elif whitelist == "self":
        policy["federation_domain_whitelist"] = [name]
    elif whitelist == "none":
        policy["federation_domain_whitelist"] = []
    if rng.random() < 0.6:
        policy["room_list_publication_rules"] = [{"action": "allow"}]
    if rng.random() < 0.3:
        policy["limit_profile_requests_to_users_who_share_rooms"] = True
        policy["require_auth_for_profile_requests"] = True
    return policy


def random_policies(rng: random.Random, text: str) -> dict[str, dict[str, Any]]:
    """A policy per homeserver of `text` (a homeport.yaml) with no lint errors."""
    model, _ = load_deployment_text(text, Path("homeport.yaml"))
    names = list(model.homeservers)
    while True:
        policies = {
            name: random_policy(rng, name, [n for n in names if n != name]) for name in names
        }
        candidate = model.model_copy(
            update={
                "homeservers": {
                    name: hs.model_copy(
                        update={"policy": type(hs.policy).model_validate(policies[name])}
                    )
                    for name, hs in model.homeservers.items()
                }
            }
        )
        if not has_errors(lint(candidate)):
            return policies
