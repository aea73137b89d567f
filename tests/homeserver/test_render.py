"""Model -> homeserver.yaml, table-driven, plus a golden file for the starter deployment."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeport.audit.registration import render_registration
from homeport.capabilities import homeserver_config
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment_text
from homeport.config.starter import starter_text
from homeport.homeserver.log_config import render_log_config
from homeport.homeserver.render import deep_merge
from homeport.layout import DeploymentLayout
from homeport.synapse_module.directory_login import DirectoryLogin

SOURCE = Path("/srv/homeport/homeport.yaml")
GOLDEN = Path(__file__).parent / "golden"


def deployment(text: str) -> Deployment:
    return load_deployment_text(text, SOURCE)[0]


def two(
    internal_extra: str = "", external: str = "    server_name: localhost:8449\n    port: 8449\n"
) -> Deployment:
    return deployment(
        "homeservers:\n  internal:\n    server_name: localhost:8448\n    port: 8448\n"
        + internal_extra
        + "  external:\n"
        + external
    )


@dataclass(frozen=True)
class Case:
    id: str
    model: Deployment
    expected: dict[str, Any]
    absent: list[str] = field(default_factory=list)


CASES = [
    Case(
        "sqlite-by-default",
        two(),
        {
            "database": {
                "name": "sqlite3",
                "args": {"database": "/srv/homeport/data/homeservers/internal/homeserver.db"},
            }
        },
    ),
    Case(
        "postgresql-url",
        two("    database: postgresql://synapse:s%40cret@db.example:5433/internal\n"),
        {
            "database": {
                "name": "psycopg2",
                "txn_limit": 10000,
                "args": {
                    "database": "internal",
                    "user": "synapse",
                    "password": "s@cret",
                    "host": "db.example",
                    "port": 5433,
                    "cp_min": 5,
                    "cp_max": 10,
                },
            }
        },
    ),
    Case(
        "a-loopback-sibling-is-allowed-by-its-one-address",
        two(),
        {"ip_range_whitelist": ["127.0.0.1"]},
    ),
    Case(
        "localhost-on-all-interfaces-is-its-loopback",
        two(external="    server_name: localhost:8449\n    address: 0.0.0.0\n    port: 8449\n"),
        {"ip_range_whitelist": ["127.0.0.1"]},
    ),
    Case(
        "a-sibling-on-a-public-address-needs-nothing",
        two(
            external="    server_name: ext.example.org:8449\n"
            "    address: 93.184.216.34\n    port: 8449\n"
        ),
        {},
        absent=["ip_range_whitelist"],
    ),
    Case(
        "a-lone-server-opens-nothing",
        deployment("homeservers:\n  solo:\n    server_name: localhost:8448\n    port: 8448\n"),
        {},
        absent=["ip_range_whitelist"],
    ),
    Case(
        "sibling-on-a-private-address",
        two(external="    server_name: ext.example.org\n    address: 10.0.0.5\n    port: 8448\n"),
        {"ip_range_whitelist": ["10.0.0.5"]},
    ),
    Case(
        "sibling-on-all-interfaces-with-a-public-name",
        two(
            external="    server_name: ext.example.org:8449\n    address: 0.0.0.0\n    port: 8449\n"
        ),
        {},
        absent=["ip_range_whitelist"],
    ),
    Case(
        "own-certificate",
        two("    tls: {certificate: /etc/ssl/i.crt, key: /etc/ssl/i.key}\n"),
        {"tls_certificate_path": "/etc/ssl/i.crt", "tls_private_key_path": "/etc/ssl/i.key"},
    ),
    Case(
        "extra-trusted-ca",
        deployment(
            "trusted_ca_files: [corp-ca.pem]\nhomeservers:\n  internal:\n"
            "    server_name: localhost:8448\n    port: 8448\n"
        ),
        {
            "federation_custom_ca_list": [
                "/srv/homeport/data/ca/ca.crt",
                "/srv/homeport/corp-ca.pem",
            ]
        },
    ),
    Case(
        "passthrough-merges-deeply",
        two(
            "    synapse:\n      rc_message: {per_second: 50}\n"
            "      federation: {client_timeout: 20s}\n"
        ),
        {
            "rc_message": {"per_second": 50, "burst_count": 30},
            "federation": {
                "max_long_retries": 3,
                "max_long_retry_delay": 10_000,
                "destination_min_retry_interval": 30_000,
                "destination_retry_multiplier": 2,
                "destination_max_retry_interval": 60_000,
                "client_timeout": "20s",
            },
        },
    ),
    Case(
        "federation-retries-from-the-model",
        two(
            "    federation_retries: {max_long_retries: 5, destination_min_retry_interval: 2m,"
            " destination_max_retry_interval: 1h}\n"
        ),
        {
            "federation": {
                "max_long_retries": 5,
                "max_long_retry_delay": 10_000,
                "destination_min_retry_interval": 120_000,
                "destination_retry_multiplier": 2,
                "destination_max_retry_interval": 3_600_000,
            },
        },
    ),
    Case(
        "whitelist-resolves-names-and-adds-itself",
        two("    policy: {federation_domain_whitelist: [external, other.example.org]}\n"),
        {
            "federation_domain_whitelist": [
                "localhost:8448",
                "localhost:8449",
                "other.example.org",
            ],
            # External federates with anyone: internal asks it for the keys of servers in
            # its rooms that internal may not ask itself.
            "trusted_key_servers": [{"server_name": "localhost:8449"}],
        },
    ),
    Case(
        "empty-whitelist-means-only-itself",
        two("    policy: {federation_domain_whitelist: []}\n"),
        {"federation_domain_whitelist": ["localhost:8448"]},
    ),
    Case(
        "no-whitelist-means-open",
        two(),
        {"allow_public_rooms_over_federation": False},
        absent=["federation_domain_whitelist", "room_list_publication_rules"],
    ),
    Case(
        "rooms-never-configures-the-module",
        two("    policy: {rooms: {federation: never}}\n    synapse: {modules: [{module: x.Y}]}\n"),
        {
            "modules": [
                {
                    "module": "homeport.synapse_module.module.HomeportModule",
                    "config": {"rooms_federation": "never"},
                },
                {"module": "x.Y"},
            ]
        },
    ),
    Case(
        "public-baseurl",
        two("    public_baseurl: https://matrix.example.org/\n"),
        {"public_baseurl": "https://matrix.example.org/"},
    ),
]


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_render(case: Case) -> None:
    name = next(iter(case.model.homeservers))
    config = homeserver_config(case.model, name, DeploymentLayout(case.model.data_dir))
    for key, value in case.expected.items():
        assert _subset(value, config.get(key)), (key, config.get(key))
    for key in case.absent:
        assert key not in config

    # Invariants every rendering keeps, whatever the model says.
    assert config["federation_verify_certificates"] is True
    # Keys are never asked of a server outside the file (matrix.org by default).
    own = {hs.server_name for hs in case.model.homeservers.values()}
    assert {entry["server_name"] for entry in config["trusted_key_servers"]} <= own
    (listener,) = config["listeners"]
    assert listener["tls"] is True
    assert {"client", "federation"} <= set(listener["resources"][0]["names"])
    assert not [k for k in config if "secret" in k and not k.endswith("_path")]


def test_starter_renders_like_the_golden_files() -> None:
    model = deployment(starter_text())
    layout = DeploymentLayout(model.data_dir)
    rewritten = []
    for name in model.homeservers:
        rendered = yaml.safe_dump(homeserver_config(model, name, layout), sort_keys=False)
        golden = GOLDEN / f"{name}.yaml"
        if os.environ.get("UPDATE_GOLDEN") and rendered != golden.read_text():
            golden.write_text(rendered)
            rewritten.append(str(golden))
            continue
        assert rendered == golden.read_text(), f"{golden} differs; UPDATE_GOLDEN=1 rewrites it"
    # A rewrite is never a pass: the run that rewrites fails, naming what to review.
    assert not rewritten, f"rewrote {rewritten}: review the diff, then run without UPDATE_GOLDEN"
    log = render_log_config(layout.homeserver("internal"))
    assert log["handlers"]["file"]["filename"].endswith("internal/logs/homeserver.log")


@pytest.mark.parametrize(
    ("base", "override", "merged"),
    [
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        ({"a": {"x": 1}}, {"a": None}, {"a": None}),
    ],
)
def test_deep_merge(base: dict[str, Any], override: dict[str, Any], merged: dict[str, Any]) -> None:
    assert deep_merge(base, override) == merged


def test_the_audit_bot_is_registered_as_an_exclusive_application_service() -> None:
    model = two(
        "    audit: {port: 9100, localpart: recorder, displayname: Recorder (recording)}\n"
        "    synapse:\n      app_service_config_files: [/etc/bridges/irc.yaml]\n"
    )
    layout = DeploymentLayout(model.data_dir)
    hs = model.homeservers["internal"]
    registration = render_registration(hs, "as-secret", "hs-secret")
    assert registration["url"] == "http://127.0.0.1:9100"
    assert registration["rate_limited"] is False
    [namespace] = registration["namespaces"]["users"]
    assert namespace["exclusive"] is True
    pattern = re.compile(namespace["regex"])
    assert pattern.fullmatch("@recorder:localhost:8448")
    assert not pattern.fullmatch("@recorderx:localhost:8448")
    assert not pattern.fullmatch("@recorder:localhost:84489")
    # The application service's own user is not the bot: Synapse refuses it /sync.
    assert registration["sender_localpart"] != "recorder"
    config = homeserver_config(model, "internal", layout)
    assert config["app_service_config_files"] == [
        str(layout.audit("internal").registration),
        "/etc/bridges/irc.yaml",  # the administrator's own bridges stay
    ]
    [module, *_] = config["modules"]
    assert module["config"]["audit"] == {
        "user_id": "@recorder:localhost:8448",
        "displayname": "Recorder (recording)",
        "auto_join": "none",
        "include_direct_messages": False,
    }
    # No bot, no registration; a disabled bot likewise.
    assert "app_service_config_files" not in homeserver_config(model, "external", layout)
    off = two("    audit: {port: 9100, enabled: false}\n")
    assert "app_service_config_files" not in homeserver_config(off, "internal", layout)
    assert "audit" not in homeserver_config(off, "internal", layout)["modules"][0]["config"]


GROUP_SYNC = """
group_sync:
  homeserver: internal
  port: 8460
  ldap:
    uri: [ldaps://dc1.example.org, ldaps://dc2.example.org]
    ca_file: ad-ca.pem
    bind_dn: CN=matrix,OU=Services,DC=example,DC=org
    bind_password_file: ad.secret
    user_base: OU=People,DC=example,DC=org
    group_base: OU=Groups,DC=example,DC=org
    active_directory: true
  spaces:
    - {name: Staff, alias: staff, ldap_cn: staff}
"""


def test_group_sync_people_log_in_through_homeports_directory_login() -> None:
    """Only the group sync homeserver gets directory login, from the same ldap settings
    (read back by the module exactly as the model holds them: AD's sAMAccountName stays
    the default name), and with the audit bot's name among Homeport's own accounts."""
    model = deployment(
        "homeservers:\n  internal: {server_name: 'localhost:8448', port: 8448, audit: {port: 9100,"
        " localpart: recorder}}\n"
        "  external: {server_name: 'localhost:8449', port: 8449}\n" + GROUP_SYNC
    )
    layout = DeploymentLayout(model.data_dir)
    modules = homeserver_config(model, "internal", layout)["modules"]
    assert [m["module"] for m in modules] == [
        "homeport.synapse_module.module.HomeportModule",
        "homeport.synapse_module.directory_login.DirectoryLogin",
    ]
    config = modules[1]["config"]
    assert config["bot_localparts"] == ["recorder"]
    parsed = DirectoryLogin.parse_config(json.loads(json.dumps(config)))
    assert model.group_sync is not None
    assert parsed.ldap == model.group_sync.ldap
    assert parsed.bot_localparts == ("recorder",)
    assert parsed.ldap.localpart_attribute == "sAMAccountName"
    assert str(parsed.ldap.bind_password_file) == "/srv/homeport/ad.secret"
    assert str(parsed.ldap.ca_file) == "/srv/homeport/ad-ca.pem"
    # Typed both ways: what the module does not know, or lacks, stops Synapse's start.
    for wrong, refusal in (
        ({k: v for k, v in config.items() if k != "bot_localparts"}, "bot_localparts\n.*missing"),
        ({**config, "bot_localpart": ["recorder"]}, "bot_localpart\n.*not permitted"),
        ({**config, "ldap": {**config["ldap"], "timeout": "soon"}}, "ldap.timeout"),
    ):
        with pytest.raises(ValueError, match=refusal):
            DirectoryLogin.parse_config(json.loads(json.dumps(wrong)))
    external = homeserver_config(model, "external", layout)["modules"]
    assert [m["module"] for m in external] == ["homeport.synapse_module.module.HomeportModule"]
    without_login = deployment(
        "homeservers:\n  internal: {server_name: 'localhost:8448', port: 8448}\n"
        + GROUP_SYNC.replace("  spaces:", "  login: false\n  spaces:")
    )
    modules = homeserver_config(without_login, "internal", layout)["modules"]
    assert [m["module"] for m in modules] == ["homeport.synapse_module.module.HomeportModule"]


def test_the_conference_service_adds_openid_and_element_call_s_focus_and_nothing_else() -> None:
    closed = "    policy: {federation_domain_whitelist: [localhost:8448, localhost:8449]}\n"
    without = two(closed)
    conference = "conference: {port: 8453, livekit: {url: 'wss://lk.example.org', key: k}}\n"
    model = deployment(
        conference
        + "homeservers:\n  internal:\n    server_name: localhost:8448\n    port: 8448\n"
        + closed
        + "  external:\n    server_name: localhost:8449\n    port: 8449\n"
    )
    layout = DeploymentLayout(model.data_dir)
    before = homeserver_config(without, "internal", layout)
    after = homeserver_config(model, "internal", layout)
    assert after["listeners"][0]["resources"][0]["names"] == ["client", "federation", "openid"]
    assert after["serve_client_wellknown"] is True
    assert after["extra_well_known_client_content"] == {
        "org.matrix.msc4143.rtc_foci": [
            {"type": "livekit", "livekit_service_url": "https://localhost:8453"}
        ]
    }
    # The whitelist stays closed; nothing else changes.
    assert after["federation_domain_whitelist"] == ["localhost:8448", "localhost:8449"]
    for key in ("listeners", "serve_client_wellknown", "extra_well_known_client_content"):
        after.pop(key)
        before.pop(key, None)
    assert after == before


PROXIED = (
    "proxy: {address: 127.10.0.1}\n"
    "conference: {port: 8453, host: meet.example.org, "
    "livekit: {url: 'wss://lk.example.org', key: k}}\n"
    "homeservers:\n"
    "  internal: {server_name: internal.example.org, port: 8448}\n"
    "  external: {server_name: example.org, public_host: matrix.example.org, port: 8449}\n"
)


def test_behind_the_proxy_synapse_takes_its_urls_and_client_addresses_from_it() -> None:
    model = deployment(PROXIED)
    layout = DeploymentLayout(model.data_dir)
    internal = homeserver_config(model, "internal", layout)
    external = homeserver_config(model, "external", layout)
    assert internal["public_baseurl"] == "https://internal.example.org/"
    assert external["public_baseurl"] == "https://matrix.example.org/"
    assert internal["listeners"][0]["x_forwarded"] is True
    assert internal["listeners"][0]["bind_addresses"] == ["127.0.0.1"]
    # Siblings are reached through the proxy: its address, as it is a loopback one.
    assert internal["ip_range_whitelist"] == ["127.10.0.1"]
    focus = internal["extra_well_known_client_content"]["org.matrix.msc4143.rtc_foci"]
    assert focus == [{"type": "livekit", "livekit_service_url": "https://meet.example.org"}]
    # Homeport's own services still reach Synapse's listener, checking its name.
    hs = model.homeservers["external"]
    assert (hs.local_url, hs.tls_name) == ("https://127.0.0.1:8449", "example.org")
    # ...or where `service_host` says (a cluster's Service), the name still checked.
    elsewhere = hs.model_copy(update={"service_host": "synapse.homeport-external.svc"})
    assert elsewhere.local_url == "https://synapse.homeport-external.svc:8449"


def test_a_proxy_on_every_address_opens_nothing_for_siblings() -> None:
    model = deployment(PROXIED.replace("proxy: {address: 127.10.0.1}", "proxy: {port: 8443}"))
    layout = DeploymentLayout(model.data_dir)
    rendered = homeserver_config(model, "internal", layout)
    assert "ip_range_whitelist" not in rendered
    assert rendered["public_baseurl"] == "https://internal.example.org:8443/"
    assert homeserver_config(two(), "internal", layout)["listeners"][0]["x_forwarded"] is False
