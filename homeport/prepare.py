"""The I/O edge before start: check the machine, then write keys, certificates and configs.

`preflight` only looks (nothing is written when it finds a problem);
`materialize` writes, and is safe to run again: secrets and the CA are kept,
configs are rendered anew from the model.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import yaml

from homeport import pki
from homeport.config.deployment import Deployment
from homeport.config.lines import LineMap, dotted
from homeport.config.types import split_server_name
from homeport.credentials import ensure_secrets
from homeport.errors import ConfigProblem
from homeport.files import ensure_dir, write_atomic, write_private
from homeport.layout import DeploymentLayout
from homeport.synapse.render import render_homeserver, render_log_config


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_problem(path: Path) -> str | None:
    """Why `path` cannot be used as a data folder, or None. Leaves nothing behind."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        return f"{existing} is not a folder, so {path} cannot be created"
    try:
        probe = tempfile.mkdtemp(dir=existing, prefix=".homeport-probe-")
    except OSError as error:
        return f"cannot write in {existing}: {error.strerror}"
    os.rmdir(probe)
    return None


def _port_problem(address: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f"port {port} on {address} is already in use by another program"
            return f"cannot listen on {address}:{port}: {error.strerror}"
    return None


def preflight(
    deployment: Deployment, lines: LineMap, source: Path, check_ports: bool = True
) -> list[ConfigProblem]:
    """What would stop the deployment from starting on this machine."""
    problems: list[ConfigProblem] = []

    def problem(path: tuple[str, ...], message: str, hint: str = "") -> None:
        problems.append(ConfigProblem(source, lines.line_of(path), dotted(path), message, hint))

    why = _writable_problem(deployment.data_dir)
    if why:
        problem(("data_dir",), why, "choose a folder you can write to")
    for index, ca_file in enumerate(deployment.trusted_ca_files):
        if not ca_file.is_file():
            problems.append(
                ConfigProblem(
                    source,
                    lines.line_of(("trusted_ca_files", index)),
                    f"trusted_ca_files[{index}]",
                    f"no such file: {ca_file}",
                )
            )
    if check_ports and deployment.admin is not None:
        why = _port_problem(deployment.admin.address, deployment.admin.port)
        if why:
            problem(("admin", "port"), why, "stop that program or choose another port")
    for name, hs in deployment.homeservers.items():
        base = ("homeservers", name)
        if hs.tls:
            for key, file in (("certificate", hs.tls.certificate), ("key", hs.tls.key)):
                if not file.is_file():
                    problem((*base, "tls", key), f"no such file: {file}")
        if check_ports:
            why = _port_problem(hs.address, hs.port)
            if why:
                problem((*base, "port"), why, "stop that program or choose another port")
    return problems


IDENTITY_KEYS = ("server_name", "listeners", "database", "public_baseurl")


class Applied(TypedDict):
    """What a homeserver runs with: the keys a restart cannot change, and a config digest."""

    identity: dict[str, Any]
    digest: str


def applied_record(config: dict[str, Any]) -> Applied:
    return {
        "identity": {key: config.get(key) for key in IDENTITY_KEYS},
        "digest": hashlib.sha256(dump_yaml(config)).hexdigest(),
    }


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
        applied[name] = applied_record(render_homeserver(deployment, name, layout))
    write_atomic(layout.applied_file, json.dumps(applied, indent=2).encode())


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
        wanted = applied_record(render_homeserver(deployment, name, layout))["identity"]
        if name not in applied:
            changes[name] = ["the homeserver is not part of the running deployment"]
            continue
        running = applied[name]["identity"]
        changed = [key for key in IDENTITY_KEYS if running.get(key) != wanted.get(key)]
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
        and applied[name]["digest"]
        != applied_record(render_homeserver(deployment, name, layout))["digest"]
    ]


def materialize(deployment: Deployment, only: str | None = None) -> DeploymentLayout:
    """Create what is missing (CA, certificates, secrets) and render config files.

    Every homeserver's, or with `only` just that one's (for a restart).
    """
    layout = DeploymentLayout(deployment.data_dir)
    ensure_dir(layout.data_dir)
    ca = pki.ensure_ca(layout.ca_certificate, layout.ca_key, label=layout.data_dir.name)
    if deployment.admin is not None and only is None:
        ensure_dir(layout.admin_tls_certificate.parent)
        pki.ensure_leaf(
            ca, deployment.admin.host, layout.admin_tls_certificate, layout.admin_tls_key
        )
    for name, hs in deployment.homeservers.items():
        if only is not None and name != only:
            continue
        files = layout.homeserver(name)
        for folder in (files.root, files.log_dir, files.media_store):
            ensure_dir(folder)
        ensure_secrets(files)
        if hs.tls is None:
            host = split_server_name(hs.server_name).host
            pki.ensure_leaf(ca, host, files.tls_certificate, files.tls_key)
        config = render_homeserver(deployment, name, layout)
        # Mode 0600: a PostgreSQL URL may carry a password into `database.args`.
        write_private(files.config_file, dump_yaml(config))
        write_atomic(files.log_config_file, dump_yaml(render_log_config(files)))
    return layout


def dump_yaml(data: object) -> bytes:
    header = b"# Rendered by Homeport from homeport.yaml: edit that file, not this one.\n"
    return header + yaml.safe_dump(data, sort_keys=False).encode()
