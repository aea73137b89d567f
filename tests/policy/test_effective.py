"""Whom a homeserver asks for other servers' keys (`trusted_key_servers`). Pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.config.loader import load_deployment_text
from homeport.policy.effective import key_servers


def model(internal: str, external: str, partner: str = "") -> str:
    return (
        "homeservers:\n"
        f"  internal: {{server_name: 'localhost:8448', port: 8448, policy: {{{internal}}}}}\n"
        f"  external: {{server_name: 'localhost:8449', port: 8449, policy: {{{external}}}}}\n"
        + (
            f"  partner: {{server_name: 'localhost:8450', port: 8450, policy: {{{partner}}}}}\n"
            if partner
            else ""
        )
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Open to all: it asks each server itself.
        (model("", ""), {"internal": [], "external": []}),
        # The starter: internal closed to external, external open: external answers.
        (
            model("federation_domain_whitelist: [external]", ""),
            {"internal": ["localhost:8449"], "external": []},
        ),
        # Both closed to each other only: nobody else can be in their rooms.
        (
            model(
                "federation_domain_whitelist: [external]",
                "federation_domain_whitelist: [internal]",
            ),
            {"internal": [], "external": []},
        ),
        # External reaches partner, whom internal may not: external answers.
        (
            model(
                "federation_domain_whitelist: [external]",
                "federation_domain_whitelist: [internal, partner]",
                "federation_domain_whitelist: [external]",
            ),
            {"internal": ["localhost:8449"], "external": [], "partner": ["localhost:8449"]},
        ),
        # A sibling that refuses internal cannot be asked by it; external asks the
        # partner it allows, open to all.
        (
            model(
                "federation_domain_whitelist: [external]",
                "federation_domain_whitelist: [partner]",
                "allow_profile_lookup_over_federation: true",
            ),
            {"internal": [], "external": ["localhost:8450"], "partner": []},
        ),
    ],
)
def test_key_servers(text: str, expected: dict[str, list[str]]) -> None:
    deployment, _ = load_deployment_text(text, Path("homeport.yaml"))
    assert {name: key_servers(deployment, name) for name in deployment.homeservers} == expected
