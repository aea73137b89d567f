"""Lint: one table row per finding, plus the starter file and the command line."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from homeport.cli import main
from homeport.config.lines import dotted
from homeport.config.loader import load_deployment_text
from homeport.config.starter import starter_text
from homeport.policy.lint import CHECKS, Check, lint


def deployment_text(
    internal: str = "", external: str = "", synapse_external: str = "", retries_external: str = ""
) -> str:
    def block(text: str) -> str:
        return textwrap.indent(textwrap.dedent(text).strip(), " " * 6) if text.strip() else ""

    text = "homeservers:\n"
    text += "  internal:\n    server_name: localhost:8448\n    port: 8448\n"
    if internal.strip():
        text += "    policy:\n" + block(internal) + "\n"
    text += "  external:\n    server_name: localhost:8449\n    port: 8449\n"
    if external.strip():
        text += "    policy:\n" + block(external) + "\n"
    if synapse_external.strip():
        text += "    synapse:\n" + block(synapse_external) + "\n"
    if retries_external.strip():
        text += "    federation_retries:\n" + block(retries_external) + "\n"
    return text


PROXIED = (
    "homeservers:\n"
    "  internal: {server_name: internal.example.org, port: 8008}\n"
    "  external: {server_name: external.example.org, port: 8009}\n"
)


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    # (id, homeserver, dotted key under it; from the top for a section's own findings)
    expected: set[tuple[str, str, str]]


CASES = [
    Case(
        "internal spaces where nothing federates anyway",
        deployment_text(
            "federation_domain_whitelist: [internal, external]\n"
            "allow_profile_lookup_over_federation: false\n"
            "rooms: {federation: never, internal_spaces: ['#staff']}"
        ),
        {("internal-spaces-without-effect", "internal", "policy.rooms.internal_spaces")},
    ),
    Case(
        "internal spaces on a server whose profiles anyone may look up",
        deployment_text(external="rooms: {internal_spaces: ['#staff']}"),
        {
            (
                "internal-users-profiles-to-everyone",
                "external",
                "policy.allow_profile_lookup_over_federation",
            )
        },
    ),
    Case(
        "internal spaces with private profiles: nothing to say",
        deployment_text(
            external="allow_profile_lookup_over_federation: false\n"
            "rooms: {internal_spaces: ['#staff', '!abc:localhost:8449']}"
        ),
        set(),
    ),
    Case(
        "directory open to other servers, nobody may publish",
        deployment_text(
            external="allow_public_rooms_over_federation: true\n"
            "room_list_publication_rules: [{user_id: '@admin:*', action: deny}]"
        ),
        {
            (
                "public-rooms-nothing-published",
                "external",
                "policy.allow_public_rooms_over_federation",
            )
        },
    ),
    Case(
        "a portless entry next to the full names is harmless",
        deployment_text("federation_domain_whitelist: [internal, external, localhost]"),
        set(),
    ),
    Case(
        "key servers do not matter without federation",
        deployment_text(
            external="federation_domain_whitelist: []",
            synapse_external="trusted_key_servers: [{server_name: matrix.org}]",
        ),
        {("setting-without-federation", "external", "synapse.trusted_key_servers[0].server_name")},
    ),
    Case(
        "a homeserver of the file as key server, but not whitelisted",
        deployment_text(
            external="federation_domain_whitelist: [example.org]",
            synapse_external="trusted_key_servers: [{server_name: 'localhost:8448'}]",
        ),
        {
            (
                "trusted-key-server-not-whitelisted",
                "external",
                "synapse.trusted_key_servers[0].server_name",
            )
        },
    ),
    Case(
        "search all users with remote users excluded is fine",
        deployment_text(
            external="user_directory: {search_all_users: true, exclude_remote_users: true}"
        ),
        set(),
    ),
    Case("clean defaults", deployment_text(), set()),
    Case(
        "clean closed pair",
        deployment_text(
            "federation_domain_whitelist: [internal, external]",
            "federation_domain_whitelist: [internal, external]",
        ),
        set(),
    ),
    Case(
        "own name mistyped with another port",
        deployment_text("federation_domain_whitelist: [localhost:9999, external]"),
        {("whitelist-own-name-mistyped", "internal", "policy.federation_domain_whitelist[0]")},
    ),
    Case(
        "own name left out is fine: Homeport adds it",
        deployment_text("federation_domain_whitelist: [external]"),
        set(),
    ),
    Case(
        "asymmetric whitelists",
        deployment_text(
            "federation_domain_whitelist: [internal, external]",
            "federation_domain_whitelist: [example.org]",
        ),
        {("whitelist-asymmetric", "external", "policy.federation_domain_whitelist")},
    ),
    Case(
        "asymmetric by server name, one side no federation",
        deployment_text(
            "federation_domain_whitelist: ['localhost:8449']",
            "federation_domain_whitelist: []",
        ),
        {("whitelist-asymmetric", "external", "policy.federation_domain_whitelist")},
    ),
    Case(
        "an open server and a closed one are not asymmetric",
        deployment_text("federation_domain_whitelist: []"),
        set(),
    ),
    Case(
        "entry without the port of a homeserver of the file",
        deployment_text("federation_domain_whitelist: [internal, localhost]"),
        {("whitelist-entry-without-port", "internal", "policy.federation_domain_whitelist[1]")},
    ),
    Case(
        "a portless name of another host is fine",
        deployment_text("federation_domain_whitelist: [internal, external, example.org]"),
        set(),
    ),
    Case(
        "key server outside the deployment",
        deployment_text(synapse_external="trusted_key_servers: [{server_name: matrix.org}]"),
        {("trusted-key-server-outside", "external", "synapse.trusted_key_servers[0].server_name")},
    ),
    Case(
        "key server not on the whitelist",
        deployment_text(
            external="federation_domain_whitelist: [internal]",
            synapse_external="trusted_key_servers: [{server_name: matrix.org}]",
        ),
        {
            (
                "trusted-key-server-not-whitelisted",
                "external",
                "synapse.trusted_key_servers[0].server_name",
            )
        },
    ),
    Case(
        "key server inside the deployment is fine",
        deployment_text(synapse_external="trusted_key_servers: [{server_name: 'localhost:8448'}]"),
        set(),
    ),
    Case(
        "never federated rooms with a public directory",
        deployment_text(
            """
            allow_public_rooms_over_federation: true
            room_list_publication_rules: [{action: allow}]
            rooms: {federation: never}
            """
        ),
        {
            (
                "public-rooms-of-never-federated-server",
                "internal",
                "policy.allow_public_rooms_over_federation",
            )
        },
    ),
    Case(
        "search all users on a federating server",
        deployment_text(external="user_directory: {search_all_users: true}"),
        {
            (
                "search-all-users-with-federation",
                "external",
                "policy.user_directory.search_all_users",
            )
        },
    ),
    Case(
        "search all users without federation is fine",
        deployment_text(
            "federation_domain_whitelist: []\nuser_directory: {search_all_users: true}"
        ),
        set(),
    ),
    Case(
        "empty whitelist with federation settings that mean nothing",
        deployment_text(
            """
            federation_domain_whitelist: []
            allow_public_rooms_over_federation: true
            room_list_publication_rules: [{action: allow}]
            allow_profile_lookup_over_federation: true
            allow_device_name_lookup_over_federation: false
            """
        ),
        {
            ("setting-without-federation", "internal", "policy.allow_public_rooms_over_federation"),
            (
                "setting-without-federation",
                "internal",
                "policy.allow_profile_lookup_over_federation",
            ),
        },
    ),
    Case(
        "federation with chosen users of a server",
        deployment_text("federation_domain_whitelist: [internal, '@bob:localhost:8449']"),
        {
            ("per-user-federation", "internal", "policy.federation_domain_whitelist[1]"),
            # external is open and internal no longer lists it: not asymmetric, just closed.
        },
    ),
    Case(
        "wildcards",
        deployment_text("federation_domain_whitelist: ['*.example.org']"),
        {("whitelist-pattern", "internal", "policy.federation_domain_whitelist[0]")},
    ),
    Case(
        "profile limit without auth",
        deployment_text("limit_profile_requests_to_users_who_share_rooms: true"),
        {
            (
                "profile-limit-needs-auth",
                "internal",
                "policy.limit_profile_requests_to_users_who_share_rooms",
            )
        },
    ),
    Case(
        "profile limit with auth is fine",
        deployment_text(
            "limit_profile_requests_to_users_who_share_rooms: true\n"
            "require_auth_for_profile_requests: true"
        ),
        set(),
    ),
    Case(
        "device names to the whole network",
        deployment_text(external="allow_device_name_lookup_over_federation: true"),
        {
            (
                "device-names-to-everyone",
                "external",
                "policy.allow_device_name_lookup_over_federation",
            )
        },
    ),
    Case(
        "public rooms without a directory",
        deployment_text(
            external="allow_public_rooms_over_federation: true\nenable_room_list_search: false\n"
            "room_list_publication_rules: [{action: allow}]"
        ),
        {
            (
                "public-rooms-without-directory",
                "external",
                "policy.allow_public_rooms_over_federation",
            )
        },
    ),
    Case(
        "Synapse's own retry settings: a failure shows after minutes, recovery after days",
        deployment_text(
            retries_external="max_long_retries: 10\nmax_long_retry_delay: 60s\n"
            "destination_min_retry_interval: 10m\ndestination_max_retry_interval: 7d"
        ),
        {
            ("retries-hide-outages", "external", "federation_retries.max_long_retries"),
            (
                "retries-hide-outages",
                "external",
                "federation_retries.destination_max_retry_interval",
            ),
        },
    ),
    Case(
        "retrying a dead server every second",
        deployment_text(
            retries_external="destination_min_retry_interval: 1s\n"
            "destination_max_retry_interval: 10s"
        ),
        {
            (
                "retries-hammer-dead-servers",
                "external",
                "federation_retries.destination_min_retry_interval",
            )
        },
    ),
    Case(
        "a backoff capped too low",
        deployment_text(
            retries_external="destination_min_retry_interval: 10s\n"
            "destination_max_retry_interval: 20s"
        ),
        {
            (
                "retries-hammer-dead-servers",
                "external",
                "federation_retries.destination_max_retry_interval",
            )
        },
    ),
    Case(
        "two homeservers on this machine's loopback",
        deployment_text(),
        {
            ("loopback-siblings", "internal", "address"),
            ("loopback-siblings", "external", "address"),
        },
    ),
    Case(
        "one homeserver alone on loopback needs nothing allowed",
        "homeservers:\n  solo:\n    server_name: localhost:8448\n    port: 8448\n",
        set(),
    ),
    Case(
        "a homeserver on every interface serves the admin API there",
        "homeservers:\n  solo:\n    server_name: matrix.example.org:8448\n"
        "    address: 0.0.0.0\n    port: 8448\n",
        {("admin-api-exposed", "solo", "address")},
    ),
    Case(
        "Homeport's retry defaults, stated",
        deployment_text(
            retries_external="max_long_retries: 3\nmax_long_retry_delay: 10s\n"
            "destination_min_retry_interval: 30s\ndestination_max_retry_interval: 1m"
        ),
        set(),
    ),
    Case(
        "the proxy lets the whole Internet reach the admin paths",
        PROXIED + "proxy:\n  admin_from: [127.0.0.1/32, 10.0.0.0/8, 0.0.0.0/0]\n",
        {("admin-open-through-proxy", "internal", "proxy.admin_from[2]")},
    ),
    Case(
        "siblings behind a proxy on a loopback address are allowed that address",
        PROXIED + "proxy:\n  address: 127.10.0.1\n",
        {
            ("loopback-siblings", "internal", "proxy.address"),
            ("loopback-siblings", "external", "proxy.address"),
        },
    ),
    Case(
        "a server name without a port, on another port, and nothing to delegate",
        "homeservers:\n  solo:\n    server_name: matrix.example.org\n    port: 8008\n"
        "    public_baseurl: https://matrix.example.org:8008/\n",
        {("server-name-undelegated", "solo", "server_name")},
    ),
    Case(
        "a server name without a port on 8448 needs no delegation",
        "homeservers:\n  solo:\n    server_name: matrix.example.org\n    port: 8448\n",
        set(),
    ),
    Case(
        "behind the proxy, a server name without a port is delegated by it",
        "homeservers:\n  solo:\n    server_name: matrix.example.org\n    port: 8008\nproxy: {}\n",
        set(),
    ),
    Case(
        "a port in the server name sends federation around the proxy",
        "homeservers:\n  solo:\n    server_name: matrix.example.org:8448\n    port: 8008\n"
        "proxy: {}\n",
        {("federation-bypasses-proxy", "solo", "server_name")},
    ),
    Case(
        "a closed homeserver beside one open to all: its users can join mixed rooms",
        deployment_text(internal="federation_domain_whitelist: [external]"),
        {
            ("whitelist-mixed-rooms", "internal", "policy.federation_domain_whitelist"),
            ("loopback-siblings", "internal", "address"),
            ("loopback-siblings", "external", "address"),
        },
    ),
    Case(
        "a closed homeserver whose key servers an administrator set himself",
        deployment_text(internal="federation_domain_whitelist: [external]").replace(
            "  external:\n", "    synapse: {trusted_key_servers: []}\n  external:\n"
        ),
        {
            ("loopback-siblings", "internal", "address"),
            ("loopback-siblings", "external", "address"),
        },
    ),
    Case(
        "a whitelisted server on loopback that this file does not run",
        deployment_text(internal="federation_domain_whitelist: [external, '127.0.0.5:8448']"),
        {("whitelist-unreachable", "internal", "policy.federation_domain_whitelist[1]")},
    ),
    Case(
        "a whitelisted server on a private address that this file does not run",
        deployment_text(internal="federation_domain_whitelist: [external, '10.1.2.3:8448']"),
        {("whitelist-unreachable", "internal", "policy.federation_domain_whitelist[1]")},
    ),
]


# Findings every layout of its kind has, shown only in the cases about them: where the
# homeservers listen, which every one-machine layout has (loopback) or the production
# layout answers (a public address); rooms that can mix servers, which every closed
# homeserver beside an open one has (the starter's internal and external).
LAYOUT = {"loopback-siblings", "admin-api-exposed", "whitelist-mixed-rooms"}


def found(text: str, layout: bool = False) -> set[tuple[str, str, str]]:
    deployment, _ = load_deployment_text(text, Path("homeport.yaml"))
    return {
        (f.id, f.homeserver, dotted(f.key if f.section is None else f.path))
        for f in lint(deployment)
        if layout or f.id not in LAYOUT
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_finding(case: Case) -> None:
    layout = any(finding[0] in LAYOUT for finding in case.expected)
    assert found(case.text, layout) == case.expected


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_every_check_has_a_case(check: Check) -> None:
    """A new check without a row in the table fails here."""
    hits = 0
    for case in CASES:
        deployment, _ = load_deployment_text(case.text, Path("homeport.yaml"))
        hits += sum(1 for name in deployment.homeservers for _ in check(deployment, name))
    assert hits > 0


def test_findings_explain_and_fix() -> None:
    for case in CASES:
        deployment, _ = load_deployment_text(case.text, Path("homeport.yaml"))
        for finding in lint(deployment):
            assert finding.explanation
            assert finding.fix
            assert finding.message


def test_per_user_federation_explains_server_scoped_trust() -> None:
    (case,) = [c for c in CASES if c.name == "federation with chosen users of a server"]
    deployment, _ = load_deployment_text(case.text, Path("homeport.yaml"))
    (finding,) = [f for f in lint(deployment) if f.id not in LAYOUT]
    assert "server-scoped" in finding.explanation
    assert "second homeserver" in finding.explanation


def test_the_starter_has_only_its_one_machine_warnings() -> None:
    assert found(starter_text(), layout=True) == {
        ("loopback-siblings", "internal", "address"),
        ("loopback-siblings", "external", "address"),
        ("whitelist-mixed-rooms", "internal", "policy.federation_domain_whitelist"),
    }


def test_lint_command_json_and_exit_code(tmp_path: Path) -> None:
    config = tmp_path / "homeport.yaml"
    config.write_text(deployment_text("federation_domain_whitelist: [internal, localhost]"))
    result = CliRunner().invoke(main, ["lint", "-c", str(config), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["errors"] == 1
    (finding,) = [f for f in report["findings"] if f["id"] not in LAYOUT]
    assert finding["id"] == "whitelist-entry-without-port"
    assert finding["key"] == "homeservers.internal.policy.federation_domain_whitelist[1]"
    assert finding["line"] == 6


def test_up_refuses_on_errors_and_starts_nothing(tmp_path: Path) -> None:
    config = tmp_path / "homeport.yaml"
    config.write_text(deployment_text("federation_domain_whitelist: ['@bob:localhost:8449']"))
    result = CliRunner().invoke(main, ["up", "-c", str(config)])
    assert result.exit_code == 2
    assert "per-user-federation" in result.output
    assert "server-scoped" in result.output
    assert not (tmp_path / "data").exists()


def test_up_goes_on_with_warnings(tmp_path: Path) -> None:
    """Warnings are printed by `render` (as by `up`) and do not stop it."""
    config = tmp_path / "homeport.yaml"
    config.write_text(deployment_text(external="user_directory: {search_all_users: true}"))
    result = CliRunner().invoke(main, ["render", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "search-all-users-with-federation" in result.output
    assert (tmp_path / "data" / "homeservers" / "external" / "homeserver.yaml").exists()


def test_a_publication_rule_synapse_would_refuse_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "homeport.yaml"
    config.write_text(
        deployment_text(external="room_list_publication_rules: [{user_id: '*', action: allowed}]")
    )
    result = CliRunner().invoke(main, ["lint", "-c", str(config)])
    assert result.exit_code == 2
    assert "room_list_publication_rules[0].action" in result.output
    assert ":9:" in result.output
