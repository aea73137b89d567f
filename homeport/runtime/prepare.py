"""The I/O edge before start: check the machine, then write keys, certificates and configs.

`preflight` only looks (nothing is written when it finds a problem);
`materialize` writes, and is safe to run again: secrets and the CA are kept,
configs are rendered anew from the model.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import tempfile
from pathlib import Path

from homeport import pki
from homeport.capabilities import CAPABILITIES, homeserver_config, synapse_pieces
from homeport.capability import Preparing
from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.lines import KeyPath, LineMap, problem_at
from homeport.config.types import split_server_name
from homeport.credentials import ensure_secrets
from homeport.errors import ConfigProblem, HomeportError
from homeport.files import (
    dump_yaml,
    ensure_dir,
    read_or_create_private,
    write_atomic,
    write_private,
)
from homeport.homeserver.log_config import render_log_config, worker_log_config
from homeport.homeserver.workers import worker_config
from homeport.layout import DeploymentLayout, HomeserverLayout

logger = logging.getLogger(__name__)


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


def _trust_problem(data_dir: Path) -> tuple[str, str] | None:
    """Why the data folder's secrets cannot be trusted: someone else owns it, or may write.

    Keys, secrets and the CA live there; a folder another user can write to
    lets that user swap them. Checked on the folder and the ones holding secrets.
    """
    layout = DeploymentLayout(data_dir)
    folders = [data_dir, layout.ca_certificate.parent, layout.run_dir]
    for kind in ("homeservers", "audit"):
        if (data_dir / kind).is_dir():
            folders += [p / "keys" for p in (data_dir / kind).iterdir() if p.is_dir()]
    for folder in folders:
        if not folder.exists():
            continue
        info = folder.stat()
        if info.st_uid != os.getuid():
            return (
                f"{folder} belongs to user id {info.st_uid}, not to you ({os.getuid()})",
                "run Homeport as that user, or `chown -R` the data folder to yourself",
            )
        if info.st_mode & 0o022:
            return (
                f"{folder} can be written by other users (mode {info.st_mode & 0o777:o})",
                f"chmod go-w {folder}",
            )
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

    def problem(path: KeyPath, message: str, hint: str = "") -> None:
        problems.append(problem_at(source, lines, path, message, hint))

    why = _writable_problem(deployment.data_dir)
    if why:
        problem(("data_dir",), why, "choose a folder you can write to")
    untrusted = _trust_problem(deployment.data_dir)
    if untrusted:
        problem(("data_dir",), *untrusted)
    for index, ca_file in enumerate(deployment.trusted_ca_files):
        if not ca_file.is_file():
            problem(("trusted_ca_files", index), f"no such file: {ca_file}")
    for name, hs in deployment.homeservers.items():
        base = ("homeservers", name)
        if hs.tls:
            for key, file in (("certificate", hs.tls.certificate), ("key", hs.tls.key)):
                if not file.is_file():
                    problem((*base, "tls", key), f"no such file: {file}")
            hosts = [split_server_name(hs.server_name).host]
            if deployment.proxy is not None and hs.served_host not in hosts:
                hosts.append(hs.served_host)  # the proxy serves the APIs on it
            for host in hosts:
                why = pki.certificate_problem(hs.tls.certificate, host)
                if why:
                    problem(
                        (*base, "tls", "certificate"),
                        why,
                        f"use a certificate issued for {' and '.join(hosts)}",
                    )
        if check_ports:
            why = _port_problem(hs.address, hs.port)
            if why:
                problem((*base, "port"), why, "stop that program or choose another port")
    for capability in CAPABILITIES:
        for found in capability.file_problems(deployment):
            problem(found.key, found.message, found.hint)
        for claim in capability.ports(deployment) if check_ports else ():
            why = _port_problem(claim.address, claim.port)
            if why:
                problem(claim.key, why, "stop that program or choose another port")
    return problems


def materialize(deployment: Deployment, only: str | None = None) -> DeploymentLayout:
    """Create what is missing (CA, certificates, secrets) and render config files.

    Every homeserver's, or with `only` just that one's (for a restart).
    """
    layout = DeploymentLayout(deployment.data_dir)
    ensure_dir(layout.data_dir)
    hosts = local_ca_hosts(deployment)
    if only is not None and not pki.ca_fits(layout.ca_certificate, hosts):
        raise HomeportError(
            "the local CA must be replaced (a host name changed, or it expires within 90 "
            "days), and every homeserver must then trust the new one: restart the whole "
            "deployment (stop `homeport up`, start it again)"
        )
    ca, rotated = pki.ensure_ca(
        layout.ca_certificate, layout.ca_key, label=layout.data_dir.name, hosts=hosts
    )
    if rotated:
        logger.info("homeport: new local CA for %s", ", ".join(hosts))
    for capability in CAPABILITIES:
        capability.materialize(deployment, Preparing(layout, ca, only))
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
            public = _separate_public_host(deployment, hs)
            if public is not None:
                pki.ensure_leaf(ca, public, files.public_tls_certificate, files.public_tls_key)
        config = homeserver_config(deployment, name, layout)
        # Mode 0600: a PostgreSQL URL may carry a password into `database.args`.
        write_private(files.config_file, dump_yaml(config))
        write_atomic(files.log_config_file, dump_yaml(render_log_config(files)))
        write_worker_files(deployment, name, files)
    return layout


def write_worker_files(deployment: Deployment, name: str, files: HomeserverLayout) -> None:
    """Each worker's own file and log config; the replication secret, made once."""
    specs = deployment.homeservers[name].workers.specs()
    if not specs:
        return
    read_or_create_private(files.replication_secret, secrets.token_urlsafe(48).encode())
    pieces = synapse_pieces(deployment, name, DeploymentLayout(deployment.data_dir))
    for spec in specs:
        config = worker_config(deployment, spec, files, pieces)
        write_atomic(files.worker_config_file(spec.name), dump_yaml(config))
        write_atomic(
            files.worker_log_config_file(spec.name), dump_yaml(worker_log_config(files, spec))
        )


def _separate_public_host(deployment: Deployment, hs: Homeserver) -> str | None:
    """The host a proxy or an Ingress serves `hs` on, when it is not the server name's host."""
    if hs.public_host is None or hs.public_host == hs.tls_name:
        return None
    return hs.public_host


def local_ca_hosts(deployment: Deployment) -> list[str]:
    """Every host the local CA issues a certificate for (its NameConstraints)."""
    hosts = []
    for hs in deployment.homeservers.values():
        if hs.tls is None:
            hosts.append(split_server_name(hs.server_name).host)
            public = _separate_public_host(deployment, hs)
            if public is not None:
                hosts.append(public)
    hosts += [
        host for capability in CAPABILITIES for host in capability.certificate_hosts(deployment)
    ]
    return list(dict.fromkeys(hosts)) or ["localhost"]
