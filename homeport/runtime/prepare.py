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

import yaml

from homeport import pki
from homeport.audit.registration import render_registration
from homeport.conference.secrets import ensure_secrets as ensure_conference_secrets
from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.lines import KeyPath, LineMap, problem_at
from homeport.config.types import split_server_name
from homeport.credentials import ensure_secrets
from homeport.errors import ConfigProblem, HomeportError
from homeport.files import ensure_dir, read_or_create_private, write_atomic, write_private
from homeport.homeserver.log_config import render_log_config, worker_log_config
from homeport.homeserver.render import render_homeserver
from homeport.homeserver.workers import worker_config
from homeport.layout import AuditLayout, DeploymentLayout, HomeserverLayout

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
            hosts = [split_server_name(hs.server_name).host]
            if deployment.proxy is not None and hs.served_host not in hosts:
                hosts.append(hs.served_host)  # the proxy serves the APIs on it
            for host in hosts:
                why = _certificate_problem(hs.tls.certificate, host)
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
            why = _port_problem("127.0.0.1", hs.audit_bot.port) if hs.audit_bot else None
            if why:
                problem((*base, "audit", "port"), why, "stop that program or choose another port")
    sync = deployment.group_sync
    if sync is not None:
        ldap = ("group_sync", "ldap")
        secret = sync.ldap.bind_password_file
        if secret is not None and not secret.is_file():
            problem(
                (*ldap, "bind_password_file"),
                f"no such file: {secret}",
                "write the directory's bind password into it (one line, chmod 600)",
            )
        elif secret is not None and secret.stat().st_mode & 0o077:
            problem(
                (*ldap, "bind_password_file"),
                f"{secret} can be read by other users of this machine",
                f"chmod 600 {secret}",
            )
        if sync.ldap.ca_file is not None and not sync.ldap.ca_file.is_file():
            problem((*ldap, "ca_file"), f"no such file: {sync.ldap.ca_file}")
        why = _port_problem("127.0.0.1", sync.port) if check_ports else None
        if why:
            problem(("group_sync", "port"), why, "stop that program or choose another port")
    conference = deployment.conference
    if conference is not None:
        own: KeyPath = ("conference",)
        if conference.tls:
            for key, file in (
                ("certificate", conference.tls.certificate),
                ("key", conference.tls.key),
            ):
                if not file.is_file():
                    problem((*own, "tls", key), f"no such file: {file}")
            why = _certificate_problem(conference.tls.certificate, conference.host)
            if why:
                problem(
                    (*own, "tls", "certificate"),
                    why,
                    f"use a certificate issued for {conference.host}, or set `host`",
                )
        named = (
            (("jitsi", "app_secret_file"), conference.jitsi and conference.jitsi.app_secret_file),
            (("livekit", "secret_file"), conference.livekit and conference.livekit.secret_file),
        )
        for path, secret_file in named:
            if not secret_file:
                continue
            if not secret_file.is_file():
                problem(
                    (*own, *path),
                    f"no such file: {secret_file}",
                    "write the secret into it (one line, chmod 600), or leave the key out "
                    "and Homeport generates one",
                )
            elif secret_file.stat().st_mode & 0o077:
                problem(
                    (*own, *path),
                    f"{secret_file} can be read by other users of this machine",
                    f"chmod 600 {secret_file}",
                )
        why = _port_problem(conference.address, conference.port) if check_ports else None
        if why:
            problem((*own, "port"), why, "stop that program or choose another port")
    return problems


def _certificate_problem(path: Path, host: str) -> str | None:
    """Why the certificate at `path` would fail TLS for `host`, if it would."""
    if not path.is_file():
        return None  # said already
    try:
        names = pki.certificate_names(path.read_bytes())
    except ValueError:
        return f"{path} is not a PEM certificate"
    if any(pki.name_covers(name, host) for name in names):
        return None
    listed = ", ".join(names) or "no names"
    return (
        f"the certificate in {path} covers {listed}, not {host}: "
        "other servers and clients would refuse it"
    )


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
    if deployment.admin is not None and only is None:
        ensure_dir(layout.admin_tls_certificate.parent)
        pki.ensure_leaf(
            ca, deployment.admin.host, layout.admin_tls_certificate, layout.admin_tls_key
        )
    conference = deployment.conference
    if conference is not None and only is None:
        ensure_conference_secrets(conference, layout)
        if conference.tls is None:
            ensure_dir(layout.conference_tls_certificate.parent)
            pki.ensure_leaf(
                ca, conference.host, layout.conference_tls_certificate, layout.conference_tls_key
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
            public = _separate_public_host(deployment, hs)
            if public is not None:
                pki.ensure_leaf(ca, public, files.public_tls_certificate, files.public_tls_key)
        if hs.audit_bot is not None:
            register_audit_bot(hs, layout.audit(name))
        config = render_homeserver(deployment, name, layout)
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
    for spec in specs:
        write_atomic(
            files.worker_config_file(spec.name), dump_yaml(worker_config(deployment, spec, files))
        )
        write_atomic(
            files.worker_log_config_file(spec.name), dump_yaml(worker_log_config(files, spec))
        )


def register_audit_bot(hs: Homeserver, files: AuditLayout) -> None:
    """The bot's tokens (generated once, 0600) and the registration Synapse loads."""
    ensure_dir(files.keys_dir)
    as_token = read_or_create_private(files.as_token, secrets.token_urlsafe(32).encode())
    hs_token = read_or_create_private(files.hs_token, secrets.token_urlsafe(32).encode())
    registration = render_registration(hs, as_token.decode().strip(), hs_token.decode().strip())
    write_private(files.registration, dump_yaml(registration))


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
    if deployment.admin is not None:
        hosts.append(deployment.admin.host)
    if deployment.conference is not None and deployment.conference.tls is None:
        hosts.append(deployment.conference.host)
    return list(dict.fromkeys(hosts)) or ["localhost"]


def dump_yaml(data: object) -> bytes:
    header = b"# Rendered by Homeport from homeport.yaml: edit that file, not this one.\n"
    return header + yaml.safe_dump(data, sort_keys=False).encode()
