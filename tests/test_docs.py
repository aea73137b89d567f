"""A setting, command or status key that is not documented fails the build."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from homeport.audit.capability import AuditStatus
from homeport.capabilities import CAPABILITIES
from homeport.cli import main
from homeport.conference.capability import ConferenceStatus
from homeport.config.admin import AdminWebsite
from homeport.config.alerts import Alerts, Webhook
from homeport.config.audit import AuditBot, AuditExport
from homeport.config.backup import BackupSettings
from homeport.config.conference import Conference, Jitsi, LiveKit
from homeport.config.deployment import Deployment
from homeport.config.groupsync import GroupSync, LdapAttributes, LdapSettings, SpaceMapping
from homeport.config.homeserver import Homeserver, TlsFiles
from homeport.config.kubernetes import Kubernetes
from homeport.config.policy import Policy, RoomPolicy, UserDirectory
from homeport.config.proxy import Proxy
from homeport.config.store import StoreSettings
from homeport.config.workers import Redis, Workers
from homeport.groupsync.capability import DirectoryLoginStatus
from homeport.runtime.status import (
    FederationSummary,
    HomeserverStatus,
    ServiceStatus,
    Status,
)

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _commands(group: click.Group, prefix: str = "homeport") -> list[str]:
    names = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


@pytest.mark.parametrize(
    "model",
    [
        Deployment,
        Homeserver,
        TlsFiles,
        AdminWebsite,
        StoreSettings,
        AuditBot,
        AuditExport,
        GroupSync,
        LdapSettings,
        LdapAttributes,
        SpaceMapping,
        Conference,
        Jitsi,
        LiveKit,
        Kubernetes,
        Proxy,
        BackupSettings,
        Workers,
        Redis,
        Alerts,
        Webhook,
    ],
)
def test_every_setting_is_documented(model: type) -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [f for f in model.model_fields if f"`{f}`" not in text]
    assert not missing, f"undocumented in docs/configuration.md: {missing}"


@pytest.mark.parametrize(
    ("model", "prefix"),
    [(Policy, ""), (UserDirectory, "user_directory."), (RoomPolicy, "rooms.")],
)
def test_every_policy_setting_is_documented_with_its_defaults(model: type, prefix: str) -> None:
    text = (DOCS / "visibility.md").read_text()
    missing = [f for f in model.model_fields if f"| `{prefix}{f}` |" not in text]
    assert not missing, f"undocumented in docs/visibility.md: {missing}"


def test_every_command_is_documented() -> None:
    text = (DOCS / "commands.md").read_text()
    missing = [c for c in _commands(main) if f"`{c}" not in text]
    assert not missing, f"undocumented in docs/commands.md: {missing}"


def test_every_status_key_is_documented() -> None:
    text = (DOCS / "status-json.md").read_text()
    keys = [f"`{k}`" for k in Status.__annotations__ if k not in ("homeservers", "services")]
    keys += [f"`homeservers.<name>.{k}`" for k in HomeserverStatus.__annotations__]
    keys += [f"`services.<name>.{k}`" for k in ServiceStatus.__annotations__]
    keys += [f"`{k}`" for k in FederationSummary.__annotations__]
    keys += [f"`{k}`" for k in AuditStatus.__annotations__]
    keys += [f"`{k}`" for k in DirectoryLoginStatus.__annotations__]
    keys += [f"`{k}`" for k in ConferenceStatus.__annotations__]
    for capability in CAPABILITIES:
        keys += [f"`{k}`" for k in capability.status_keys]
        keys += [f"`homeservers.<name>.{k}`" for k in capability.homeserver_status_keys]
    missing = [k for k in keys if k not in text]
    assert not missing, f"undocumented in docs/status-json.md: {missing}"


def test_every_command_has_help_with_a_summary() -> None:
    for name in _commands(main):
        args = name.split()[1:]
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0
        assert "Usage:" in result.output


def test_every_lint_finding_is_documented() -> None:
    from tests.policy.test_lint import CASES

    text = (DOCS / "visibility.md").read_text()
    ids = {finding[0] for case in CASES for finding in case.expected}
    missing = [i for i in sorted(ids) if f"| `{i}` |" not in text]
    assert not missing, f"undocumented in docs/visibility.md: {missing}"


def test_every_verify_surface_is_documented() -> None:
    from homeport.policy.surfaces import SURFACES

    text = (DOCS / "visibility.md").read_text()
    missing = [s.name for s in SURFACES if f"| `{s.name}` |" not in text]
    assert not missing, f"undocumented in docs/visibility.md: {missing}"
