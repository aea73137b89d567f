"""What each running homeserver was started with, for `restart` and `verify`.

`up` and `restart` record, per homeserver, the settings a restart cannot
change (its identity: server name, listeners, database) and a digest of its
whole rendered config, so that `restart` refuses what needs a new `up` and
`verify` warns when a homeserver runs an older configuration than the file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypedDict

from homeport.capabilities import CAPABILITIES, homeserver_config
from homeport.config.deployment import Deployment
from homeport.files import dump_yaml, write_private
from homeport.layout import DeploymentLayout

# What of homeserver.yaml a restart cannot change; capabilities add their own keys.
SYNAPSE_IDENTITY_KEYS = ("server_name", "listeners", "database", "public_baseurl")


class Applied(TypedDict):
    """What a homeserver runs with: the keys a restart cannot change, and a config digest."""

    identity: dict[str, Any]
    digest: str


def applied_record(deployment: Deployment, name: str, layout: DeploymentLayout) -> Applied:
    config = homeserver_config(deployment, name, layout)
    identity = {key: config.get(key) for key in SYNAPSE_IDENTITY_KEYS}
    for capability in CAPABILITIES:
        identity.update(capability.restart_identity(deployment, name))
    return {"identity": identity, "digest": hashlib.sha256(dump_yaml(config)).hexdigest()}


def read_applied(layout: DeploymentLayout) -> dict[str, Applied]:
    try:
        data: dict[str, Applied] = json.loads(layout.applied_file.read_text())
    except (OSError, ValueError):
        return {}
    return data


def record_applied(deployment: Deployment, names: list[str]) -> None:
    """Remember what `names` were (re)started with, for `restart` and `verify`."""
    layout = DeploymentLayout(deployment.data_dir)
    applied = read_applied(layout)
    for name in names:
        applied[name] = applied_record(deployment, name, layout)
    # Mode 0600: a PostgreSQL URL in it may carry a password.
    write_private(layout.applied_file, json.dumps(applied, indent=2).encode())


def identity_changes(deployment: Deployment) -> dict[str, list[str]]:
    """Per homeserver, the settings changed in the file that a restart cannot apply.

    The running supervisor knows each homeserver by its server name, address,
    port and database, and each homeserver's config names its siblings; changing
    those needs a new `homeport up`.
    """
    layout = DeploymentLayout(deployment.data_dir)
    applied = read_applied(layout)
    changes: dict[str, list[str]] = {}
    for name in deployment.homeservers:
        wanted = applied_record(deployment, name, layout)["identity"]
        if name not in applied:
            changes[name] = ["the homeserver is not part of the running deployment"]
            continue
        running = applied[name]["identity"]
        keys = dict.fromkeys([*running, *wanted])
        changed = [key for key in keys if running.get(key) != wanted.get(key)]
        if changed:
            changes[name] = changed
    return changes


def unapplied(deployment: Deployment) -> list[str]:
    """Homeservers whose config from the file differs from what they were started with."""
    layout = DeploymentLayout(deployment.data_dir)
    applied = read_applied(layout)
    return [
        name
        for name in deployment.homeservers
        if name in applied
        and applied[name]["digest"] != applied_record(deployment, name, layout)["digest"]
    ]
