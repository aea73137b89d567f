"""Malformed configurations: a clear error with file, line and key; exit 2; nothing started."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from homeport import pki
from homeport.cli import main
from tests.harness import HOMEPORT, free_port_run, synapse_pids

GOOD = """\
data_dir: data
homeservers:
  internal:
    server_name: localhost:{p0}
    port: {p0}
  external:
    server_name: localhost:{p1}
    port: {p1}
"""


GROUP_SYNC = (
    GOOD
    + """\
group_sync:
  homeserver: internal
  port: {p2}
  ldap: {{uri: 'ldap://127.0.0.1:389', user_base: ou=p, group_base: ou=g}}
  spaces:
    - {{name: Staff, alias: staff, ldap_cn: staff}}
"""
)


ALERTS = (
    GOOD
    + """\
alerts:
  port: {p2}
  grace: 2m
"""
)


CONFERENCE = (
    GOOD
    + """\
conference:
  port: {p2}
  jitsi: {{domain: meet.example.org, app_id: homeport}}
  livekit: {{url: 'wss://livekit.example.org', key: homeport}}
"""
)


def _certificate_for_another_host(directory: Path, _port: int) -> None:
    ca, _ = pki.ensure_ca(directory / "ca.crt", directory / "ca.key", "t", ["elsewhere.example"])
    pki.ensure_leaf(ca, "elsewhere.example", directory / "c.pem", directory / "k.pem")


def _secret_readable_by_others(directory: Path, _port: int) -> None:
    secret = directory / "jitsi.secret"
    secret.write_text("shh\n")
    secret.chmod(0o644)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    line: int | None
    key: str
    says: str
    setup: Callable[[Path, int], object] | None = None


def _replace(old: str, new: str) -> str:
    return GOOD.replace(old, new, 1)


CASES = [
    Case(
        "service-host-url",
        _replace("    port: {p0}", "    port: {p0}\n    service_host: https://synapse:8448"),
        6,
        "homeservers.internal.service_host",
        "without scheme or port",
    ),
    Case(
        "whitelist-entry",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    policy:\n      federation_domain_whitelist: [internal, 'Bad N']",
        ),
        7,
        "homeservers.internal.policy.federation_domain_whitelist[1]",
        "neither a homeserver of this file nor a server name",
    ),
    Case(
        "policy-in-passthrough",
        _replace(
            "    port: {p0}", "    port: {p0}\n    synapse:\n      federation_domain_whitelist: []"
        ),
        7,
        "homeservers.internal.synapse.federation_domain_whitelist",
        "set `policy.federation_domain_whitelist`",
    ),
    Case(
        "retries-in-passthrough",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    synapse:\n      federation:\n        max_long_retries: 1",
        ),
        8,
        "homeservers.internal.synapse.federation.max_long_retries",
        "set `federation_retries.max_long_retries`",
    ),
    Case(
        "retry-duration-without-unit",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    federation_retries:\n      destination_max_retry_interval: 60",
        ),
        7,
        "homeservers.internal.federation_retries.destination_max_retry_interval",
        "give it a unit, e.g. 30s",
    ),
    Case(
        "retry-duration-typo",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    federation_retries:\n      max_long_retry_delay: 10 sec",
        ),
        7,
        "homeservers.internal.federation_retries.max_long_retry_delay",
        "not a duration",
    ),
    Case(
        "retry-max-below-min",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    federation_retries:\n      destination_max_retry_interval: 10s",
        ),
        7,
        "homeservers.internal.federation_retries.destination_max_retry_interval",
        "make the maximum at least the minimum",
    ),
    Case(
        "database-url-password-not-echoed",
        _replace("    port: {p0}", "    port: {p0}\n    database: mysql://bob:s3cret@db/synapse"),
        6,
        "homeservers.internal.database",
        "'mysql://bob:***@db/synapse': expected 'sqlite' or a postgresql://",
    ),
    Case(
        "policy-typo",
        _replace(
            "    port: {p0}", "    port: {p0}\n    policy:\n      rooms: {{federation: nevr}}"
        ),
        7,
        "homeservers.internal.policy.rooms.federation",
        "Input should be 'never' or 'creator_choice'",
    ),
    Case(
        "internal-space-not-a-space",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    policy:\n      rooms:\n        internal_spaces: ['staff']",
        ),
        8,
        "homeservers.internal.policy.rooms.internal_spaces[0]",
        "names no space: write its alias (#staff:example.org",
    ),
    Case(
        "internal-space-elsewhere",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    policy:\n      rooms:\n"
            "        internal_spaces: ['#staff', '#staff:example.org']",
        ),
        8,
        "homeservers.internal.policy.rooms.internal_spaces[1]",
        "'#staff:example.org' is a space of example.org, not of this homeserver",
    ),
    Case(
        "internal-space-twice",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    policy:\n      rooms:\n"
            "        internal_spaces: ['#staff', '#staff:localhost:{p0}']",
        ),
        8,
        "homeservers.internal.policy.rooms.internal_spaces[1]",
        "'#staff:localhost:{p0}' is listed twice",
    ),
    Case(
        "policy-unknown-key",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    policy:\n      allow_public_room_over_federation: true",
        ),
        7,
        "homeservers.internal.policy.allow_public_room_over_federation",
        "did you mean 'allow_public_rooms_over_federation'",
    ),
    Case(
        "unknown-key-deep-in-policy",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    policy:\n      user_directory: {{search_all_user: true}}",
        ),
        7,
        "homeservers.internal.policy.user_directory.search_all_user",
        "did you mean 'search_all_users'",
    ),
    Case(
        "unknown-key-in-a-publication-rule",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    policy:\n      room_list_publication_rules: [{{actoin: allow}}]",
        ),
        7,
        "homeservers.internal.policy.room_list_publication_rules[0].actoin",
        "did you mean 'action'",
    ),
    Case(
        "unknown-key-in-admin",
        GOOD + "admin:\n  port: {p2}\n  session_idle_minute: 5\n",
        11,
        "admin.session_idle_minute",
        "did you mean 'session_idle_minutes'",
    ),
    Case(
        "unknown-key-in-store",
        GOOD + "store:\n  databse: sqlite\n",
        10,
        "store.databse",
        "did you mean 'database'",
    ),
    Case(
        "store-database-url",
        GOOD + "store:\n  database: mysql://root@localhost/homeport\n",
        10,
        "store.database",
        "expected 'sqlite' or a postgresql://",
    ),
    Case(
        "homeserver-named-like-a-service",
        GOOD.replace("  external:", "  admin:"),
        6,
        "homeservers.admin",
        "one of Homeport's own services",
    ),
    Case(
        "homeserver-named-like-an-audit-bot",
        GOOD.replace("  external:", "  audit-x:"),
        6,
        "homeservers.audit-x",
        "audit-<homeserver>",
    ),
    Case(
        "audit-port-clash",
        _replace("    port: {p0}", "    port: {p0}\n    audit: {{port: {p1}}}"),
        9,
        "homeservers.external.port",
        "is already used by the audit bot of 'internal'",
    ),
    Case(
        "audit-without-port",
        _replace("    port: {p0}", "    port: {p0}\n    audit: {{auto_join: none}}"),
        6,
        "homeservers.internal.audit.port",
        "required key 'port' is missing",
    ),
    Case(
        "audit-auto-join-typo",
        _replace("    port: {p0}", "    port: {p0}\n    audit: {{port: {p2}, auto_join: all}}"),
        6,
        "homeservers.internal.audit.auto_join",
        "'none' or 'local_rooms'",
    ),
    Case(
        "audit-export-size",
        _replace(
            "    port: {p0}",
            "    port: {p0}\n    audit:\n      port: {p2}\n      export: {{directory: x, "
            "max_file_size: 100MB}}",
        ),
        8,
        "homeservers.internal.audit.export.max_file_size",
        "not a size",
    ),
    Case(
        "groupsync-unknown-homeserver",
        GROUP_SYNC.replace("homeserver: internal", "homeserver: intranet"),
        10,
        "group_sync.homeserver",
        "'intranet' is not a homeserver of this file",
    ),
    Case(
        "groupsync-space-without-group",
        GROUP_SYNC.replace(", ldap_cn: staff", ""),
        14,
        "group_sync.spaces[0]",
        "needs exactly one of `ldap_cn` and `ldap_dn`",
    ),
    Case(
        "groupsync-ldap-uri",
        GROUP_SYNC.replace("ldap://127.0.0.1:389", "http://127.0.0.1"),
        12,
        "group_sync.ldap.uri[0]",
        "is not an LDAP server address",
    ),
    Case(
        "groupsync-never-remove-regex",
        GROUP_SYNC.replace("  spaces:", "  never_remove: ['@(audit']\n  spaces:"),
        13,
        "group_sync.never_remove[0]",
        "is not a regular expression",
    ),
    Case(
        "groupsync-alias-twice",
        GROUP_SYNC + "    - {{name: Staff 2, alias: staff, ldap_cn: staff2}}\n",
        15,
        "group_sync.spaces[1].alias",
        "alias 'staff' is already used by space 'staff'",
    ),
    Case(
        "groupsync-bind-dn-without-password",
        GROUP_SYNC.replace("user_base:", "bind_dn: cn=admin, user_base:"),
        12,
        "group_sync.ldap",
        "`bind_dn` and `bind_password_file` go together",
    ),
    Case(
        "groupsync-port-clash",
        GROUP_SYNC.replace("  port: {p2}", "  port: {p0}"),
        11,
        "group_sync.port",
        "is already used by homeserver 'internal'",
    ),
    Case(
        "kubernetes-namespace-prefix",
        GOOD + "kubernetes:\n  namespace_prefix: Homeport_\n",
        10,
        "kubernetes.namespace_prefix",
        "cannot start a namespace name",
    ),
    Case(
        "proxy-admin-from",
        GOOD + "proxy:\n  admin_from: [10.0.0.1/8]\n",
        10,
        "proxy.admin_from[0]",
        "is not an address range",
    ),
    Case(
        "proxy-port-clash",
        GOOD + "proxy: {{port: {p0}}}\n",
        9,
        "proxy.port",
        "is already used by homeserver 'internal'",
    ),
    Case(
        "proxy-one-host-two-homeservers",
        GOOD + "proxy: {{port: {p2}}}\n",
        7,
        "homeservers.external.server_name",
        "the proxy serves localhost for homeserver 'internal' already",
    ),
    Case(
        "alerts-grace-below-a-check",
        ALERTS.replace("grace: 2m", "grace: 5s"),
        11,
        "alerts.grace",
        "shorter than one check (15s)",
    ),
    Case(
        "alerts-webhook-plain-http-elsewhere",
        ALERTS + "  webhook: {{url: 'http://hooks.example.org/x'}}\n",
        12,
        "alerts.webhook.url",
        "is not a webhook address",
    ),
    Case(
        "alerts-important-of-no-homeserver",
        ALERTS + "  important: {{exterior: [partner.example.org]}}\n",
        12,
        "alerts.important.exterior",
        "'exterior' is not a homeserver of this file",
    ),
    Case(
        "alerts-important-names-a-sibling",
        ALERTS + "  important: {{internal: ['localhost:{p1}']}}\n",
        12,
        "alerts.important.internal[0]",
        "is a homeserver of this file",
    ),
    Case(
        "alerts-port-clash",
        ALERTS.replace("  port: {p2}", "  port: {p0}"),
        10,
        "alerts.port",
        "is already used by homeserver 'internal'",
    ),
    Case(
        "conference-port-clash",
        CONFERENCE.replace("  port: {p2}", "  port: {p1}"),
        10,
        "conference.port",
        "is already used by homeserver 'external'",
    ),
    Case(
        "conference-port-of-the-website",
        CONFERENCE + "admin: {{port: {p2}}}\n",
        10,
        "conference.port",
        "is already used by the admin website",
    ),
    Case(
        "conference-livekit-url",
        CONFERENCE.replace("wss://livekit.example.org", "livekit.example.org"),
        12,
        "conference.livekit.url",
        "is not a LiveKit address",
    ),
    Case(
        "conference-jitsi-domain",
        CONFERENCE.replace("domain: meet.example.org", "domain: 'https://meet'"),
        11,
        "conference.jitsi.domain",
        "is not a domain name",
    ),
    Case(
        "conference-allows-its-own",
        CONFERENCE.replace("  port: {p2}", "  port: {p2}\n  allow_homeservers: [localhost:{p0}]"),
        11,
        "conference.allow_homeservers[0]",
        "is a homeserver of this file, and those are always allowed",
    ),
    Case(
        "conference-missing-secret",
        CONFERENCE.replace("app_id: homeport}}", "app_id: homeport, app_secret_file: gone}}"),
        11,
        "conference.jitsi.app_secret_file",
        "no such file",
    ),
    Case(
        "conference-secret-readable",
        CONFERENCE.replace(
            "app_id: homeport}}", "app_id: homeport, app_secret_file: jitsi.secret}}"
        ),
        11,
        "conference.jitsi.app_secret_file",
        "can be read by other users",
        setup=_secret_readable_by_others,
    ),
    Case("yaml-syntax", _replace("    port: {p0}", "    port: [{p0}"), 6, "", "YAML syntax error"),
    Case(
        "duplicate-key",
        _replace("    port: {p0}", "    port: {p0}\n    port: {p0}"),
        6,
        "",
        "duplicate key",
    ),
    Case(
        "tab-indent",
        _replace("    port: {p0}", "\tport: {p0}"),
        5,
        "",
        "YAML syntax error",
    ),
    Case(
        "unknown-top-key",
        "homeserver:\n  internal: {{}}\n",
        1,
        "homeserver",
        "did you mean 'homeservers'",
    ),
    Case(
        "unknown-key",
        _replace("    port: {p0}", "    port: {p0}\n    prot: 1"),
        6,
        "homeservers.internal.prot",
        "did you mean 'port'",
    ),
    Case(
        "wrong-type",
        _replace("    port: {p0}", "    port: eighty"),
        5,
        "homeservers.internal.port",
        "expected an integer, got 'eighty'",
    ),
    Case(
        "port-range",
        _replace("    port: {p0}", "    port: 70000"),
        5,
        "homeservers.internal.port",
        "less than or equal to 65535",
    ),
    Case(
        "missing-server-name",
        _replace("    server_name: localhost:{p0}\n", ""),
        3,
        "homeservers.internal.server_name",
        "required key 'server_name' is missing",
    ),
    Case(
        "duplicate-server-name",
        _replace("localhost:{p1}", "localhost:{p0}"),
        7,
        "homeservers.external.server_name",
        "already used by homeserver 'internal'",
    ),
    Case(
        "duplicate-port",
        GOOD.replace("port: {p1}", "port: {p0}")
        .replace("localhost:{p1}", "localhost:{p0}x")
        .replace("localhost:{p0}x", "other.localhost:{p0}"),
        8,
        "homeservers.external.port",
        "port {p0} is already used by homeserver 'internal'",
    ),
    Case(
        "port-in-use",
        GOOD,
        8,
        "homeservers.external.port",
        "already in use",
        setup=lambda _dir, port: _occupy(port + 1),
    ),
    Case(
        "server-name-url",
        _replace("server_name: localhost:{p0}", "server_name: https://x.org"),
        4,
        "homeservers.internal.server_name",
        "looks like a URL",
    ),
    Case(
        "server-name-case",
        _replace("server_name: localhost:{p0}", "server_name: Matrix.ORG"),
        4,
        "homeservers.internal.server_name",
        "not a valid server name",
    ),
    Case(
        "port-mismatch",
        _replace("    port: {p0}", "    port: 1234"),
        5,
        "homeservers.internal.port",
        "other servers will connect to port {p0}",
    ),
    Case(
        "bad-database",
        _replace("    port: {p0}", "    port: {p0}\n    database: mysql://db/x"),
        6,
        "homeservers.internal.database",
        "expected 'sqlite' or a postgresql://",
    ),
    Case(
        "postgres-without-db",
        _replace("    port: {p0}", "    port: {p0}\n    database: postgresql://u@localhost"),
        6,
        "homeservers.internal.database",
        "names no database",
    ),
    Case(
        "bad-address",
        _replace("    port: {p0}", "    port: {p0}\n    address: localhost"),
        6,
        "homeservers.internal.address",
        "is not an IP address",
    ),
    Case(
        "reserved-passthrough",
        _replace("    port: {p0}", "    port: {p0}\n    synapse:\n      listeners: []"),
        7,
        "homeservers.internal.synapse.listeners",
        "managed by Homeport",
    ),
    Case(
        "bad-homeserver-name",
        _replace("  internal:", "  Internal!:"),
        3,
        "homeservers.Internal!",
        "not a valid homeserver name",
    ),
    Case("no-homeservers", "homeservers: {{}}\n", 1, "homeservers", "must not be empty"),
    Case("empty-file", "", 1, "", "the file is empty"),
    Case("top-level-list", "- internal\n", 1, "", "expected a mapping"),
    Case(
        "homeservers-list",
        "homeservers:\n  - internal\n",
        1,
        "homeservers",
        "expected a mapping",
    ),
    Case(
        "data-dir-under-a-file",
        _replace("data_dir: data", "data_dir: afile/data"),
        1,
        "data_dir",
        "is not a folder",
        setup=lambda d, _p: (d / "afile").write_text("x"),
    ),
    Case(
        "data-dir-writable-by-others",
        GOOD,
        1,
        "data_dir",
        "can be written by other users (mode 777)",
        setup=lambda d, _p: _shared_folder(d / "data"),
    ),
    Case(
        "data-dir-unwritable",
        _replace("data_dir: data", "data_dir: /proc/homeport-data"),
        1,
        "data_dir",
        "cannot write in /proc",
    ),
    Case(
        "tls-file-missing",
        _replace("    port: {p0}", "    port: {p0}\n    tls: {{certificate: c.pem, key: k.pem}}"),
        6,
        "homeservers.internal.tls.certificate",
        "no such file",
    ),
    Case(
        "tls-certificate-for-another-host",
        _replace("    port: {p0}", "    port: {p0}\n    tls: {{certificate: c.pem, key: k.pem}}"),
        6,
        "homeservers.internal.tls.certificate",
        "covers elsewhere.example, not localhost",
        setup=_certificate_for_another_host,
    ),
    Case(
        "trusted-ca-missing",
        "trusted_ca_files: [nope.pem]\n" + GOOD,
        1,
        "trusted_ca_files[0]",
        "no such file",
    ),
]

_held_sockets: list[socket.socket] = []


def _shared_folder(path: Path) -> None:
    path.mkdir()
    path.chmod(0o777)  # what a careless `chmod -R 777` leaves


def _occupy(port: int) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    _held_sockets.append(sock)


@pytest.fixture(autouse=True)
def _release_sockets() -> Iterator[None]:
    yield
    while _held_sockets:
        _held_sockets.pop().close()


def test_there_are_at_least_fifteen_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_configuration_is_refused_with_line_and_key(tmp_path: Path, case: Case) -> None:
    p0 = free_port_run(3)
    config = tmp_path / "homeport.yaml"
    config.write_text(case.text.format(p0=p0, p1=p0 + 1, p2=p0 + 2))
    if case.setup:
        case.setup(tmp_path, p0)
    before = sorted(p.name for p in tmp_path.iterdir())

    result = CliRunner().invoke(main, ["up", "-c", str(config)])

    assert result.exit_code == 2, result.output
    stderr = result.stderr
    location = f"{config}:{case.line}:" if case.line else f"{config}:"
    assert location in stderr, stderr
    if case.key:
        assert f" {case.key}:" in stderr, stderr
    assert case.says.format(p0=p0) in stderr, stderr
    assert "s3cret" not in stderr  # a database password is never echoed
    # Nothing was written and nothing started.
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert synapse_pids(tmp_path) == []


def test_missing_file_is_exit_2_with_a_hint(tmp_path: Path) -> None:
    import subprocess

    missing = tmp_path / "nope.yaml"
    result = subprocess.run(
        [*HOMEPORT, "up", "-c", str(missing)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert f"{missing}: no such file" in result.stderr
    assert "homeport init" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    config = tmp_path / "homeport.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            homeservers:
              internal:
                server_name: localhost:8448
                port: nope
                colour: blue
            """
        )
    )
    result = CliRunner().invoke(main, ["render", "-c", str(config)])
    assert result.exit_code == 2
    assert f"{config}:4: homeservers.internal.port:" in result.stderr
    assert f"{config}:5: homeservers.internal.colour:" in result.stderr
