"""The deployment under systemd: one hardened unit that runs `homeport up`.

Why one unit, not one per process: `homeport up` is the supervisor that
knows the model. It lints before anything starts, migrates Homeport's store,
binds every port first (a taken port stops it cleanly, before any homeserver
runs), starts homeservers before the services that need them, restarts a
crashed process with backoff, and after `homeport restart` clears the other
homeservers' federation backoff; `homeport status`, `stop` and `start` read
its run state. Units per process would re-implement that ordering in
systemd and lose the shared state. systemd supervises `up` itself
(`Restart=on-failure`), confines it, and collects its output in the journal.

Beside it, `homeport-backup.timer` runs `homeport backup` on `backup.schedule`
into `backup.directory` (a oneshot service under the same confinement).

Pure: the model (with absolute paths, as the loader makes them) and where
Python lives, in; file names and contents, out.
"""

from __future__ import annotations

from pathlib import Path

from homeport.capabilities import CAPABILITIES
from homeport.config.deployment import Deployment
from homeport.config.types import parse_postgres_url

USER = "homeport"
UNIT = "homeport.service"
BACKUP_UNIT = "homeport-backup.service"
BACKUP_TIMER = "homeport-backup.timer"
PRIVILEGED_PORTS = 1024
# Paths that `ProtectHome=yes` hides: a deployment kept there needs read-only.
HOME_PATHS = (Path("/home"), Path("/root"), Path("/run/user"))


def _ports(deployment: Deployment) -> list[int]:
    ports = [hs.port for hs in deployment.homeservers.values()]
    return ports + [
        claim.port for capability in CAPABILITIES for claim in capability.ports(deployment)
    ]


def _writable(deployment: Deployment) -> list[Path]:
    paths = [deployment.data_dir, deployment.backup.directory]
    for capability in CAPABILITIES:
        paths += capability.writable_paths(deployment)
    return sorted(set(paths))


def _local_postgres(database: str) -> bool:
    """A homeserver database on this machine: the unit starts after PostgreSQL."""
    if database == "sqlite":
        return False
    host = parse_postgres_url(database).host
    return host in (None, "", "localhost", "127.0.0.1", "::1") or str(host).startswith("/")


def _under_home(path: Path) -> bool:
    return any(path == home or home in path.parents for home in HOME_PATHS)


def _hardening(writable: list[Path], kept_in_home: bool, capabilities: str) -> list[str]:
    """The confinement both units share: only the data and backup folders are writable."""
    return [
        "UMask=0077",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        *(f"ReadWritePaths={path}" for path in writable),
        f"ProtectHome={'read-only' if kept_in_home else 'yes'}",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        f"CapabilityBoundingSet={capabilities}",
        f"AmbientCapabilities={capabilities}",
    ]


def render_systemd(deployment: Deployment, config_path: Path, python: Path) -> dict[str, str]:
    """`homeport.service`, the backup's service and timer, the sysusers and tmpfiles entries."""
    config_path = config_path.resolve()
    writable = _writable(deployment)
    needs_low_port = any(port < PRIVILEGED_PORTS for port in _ports(deployment))
    kept_in_home = any(_under_home(p) for p in [config_path, python, *writable])
    names = ", ".join(deployment.homeservers)
    after = ["network-online.target"]
    databases = [hs.database for hs in deployment.homeservers.values()]
    if any(_local_postgres(db) for db in [*databases, deployment.store.database]):
        after.append("postgresql.service")
    capabilities = "CAP_NET_BIND_SERVICE" if needs_low_port else ""
    header = "# Rendered by Homeport from homeport.yaml: `homeport render --target systemd`."
    lines = [
        header,
        "[Unit]",
        f"Description=Homeport: homeservers {names} and their services",
        f"After={' '.join(after)}",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={USER}",
        f"Group={USER}",
        f"WorkingDirectory={config_path.parent}",
        f"ExecStart={python} -m homeport up -c {config_path}",
        # `up` stops every process it started within its grace periods.
        "KillMode=mixed",
        "TimeoutStopSec=150",
        "Restart=on-failure",
        "RestartSec=5s",
        "Environment=COLUMNS=120",
        "LimitNOFILE=65536",
        *_hardening(writable, kept_in_home, capabilities),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    # The backup reads what `up` writes; SQLite's online backup needs the
    # databases' shared-memory files writable, hence the data folder too.
    backup = [
        header,
        "[Unit]",
        "Description=Homeport: back up keys, databases, store and media (homeport backup)",
        f"After={' '.join(after)}",
        "",
        "[Service]",
        "Type=oneshot",
        f"User={USER}",
        f"Group={USER}",
        f"WorkingDirectory={config_path.parent}",
        f"ExecStart={python} -m homeport backup -c {config_path}",
        "Environment=COLUMNS=120",
        "Nice=10",
        "IOSchedulingClass=idle",
        *_hardening(writable, kept_in_home, ""),
        "",
    ]
    timer = [
        header,
        "[Unit]",
        "Description=Homeport: scheduled backup (backup.schedule)",
        "",
        "[Timer]",
        f"OnCalendar={deployment.backup.schedule}",
        "Persistent=true",
        "RandomizedDelaySec=10min",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    sysusers = f'u {USER} - "Homeport homeservers" {deployment.data_dir}\n'
    tmpfiles = "".join(f"d {path} 0750 {USER} {USER} -\n" for path in writable)
    return {
        UNIT: "\n".join(lines),
        BACKUP_UNIT: "\n".join(backup),
        BACKUP_TIMER: "\n".join(timer),
        "homeport.sysusers.conf": sysusers,
        "homeport.tmpfiles.conf": tmpfiles,
    }
