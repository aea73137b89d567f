"""What a backup holds and whether it fits where it is restored. Pure: no disk, no database.

What matters of a deployment: `homeport.yaml` and the files it names next to
it; the data folder's keys (signing keys: a homeserver that loses its key
loses its identity in federation), certificates, the local CA, secrets and
the audit bots' encryption keys; every database (the homeservers' and
Homeport's store); the media. What does not: logs, run state, and the
files `up` renders anew (each `homeserver.yaml`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from homeport.config.deployment import Deployment
from homeport.config.paths import named_files

FORMAT = 1
MANIFEST = "manifest.json"
CONFIG = PurePosixPath("config")
DATA = PurePosixPath("data")
DATABASES = PurePosixPath("databases")

# Under the data folder: never worth restoring.
_SKIPPED_DIRS = {"run", "logs"}
_SKIPPED_FILES = {"verify.lock"}
_RENDERED = {"homeserver.yaml", "log.config.yaml"}  # `up` renders them from homeport.yaml
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
# A path part a restore writes: no control characters, no backslash (a name
# from Synapse or the audit bot's crypto store may hold ':' '@' '!').
_SAFE_PART = re.compile(r"^[^\x00-\x1f\x7f\\]+$")


ARCHIVE_NAME = re.compile(r"^homeport-\d{8}T\d{6}Z\.tar\.gz$")


def archive_name(now: time.struct_time) -> str:
    """`homeport-20261203T031500Z.tar.gz`: sorts by time, as pruning needs."""
    return time.strftime("homeport-%Y%m%dT%H%M%SZ.tar.gz", now)


def to_prune(names: list[str], keep: int) -> list[str]:
    """The scheduled archives beyond the newest `keep`; any other file is never touched."""
    ours = sorted(name for name in names if ARCHIVE_NAME.match(name))
    return ours[: max(len(ours) - keep, 0)]


def in_data_backup(relative: PurePosixPath, with_media: bool) -> bool:
    """Whether a file of the data folder (path relative to it) goes in the backup."""
    parts = relative.parts
    if not parts or parts[0] in _SKIPPED_DIRS or relative.name in _SKIPPED_FILES:
        return False
    if relative.name.endswith(_SQLITE_SIDECARS) or relative.name.endswith(".log"):
        return False
    if parts[0] == "homeservers" and len(parts) >= 3:
        if parts[2] == "logs" or (len(parts) == 3 and parts[2] in _RENDERED):
            return False
        if parts[2] == "media_store" and not with_media:
            return False
    return True


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database the backup dumps (SQLite files travel with the data folder)."""

    owner: str  # "homeserver <name>" or "store"
    url: str

    @property
    def member(self) -> str:
        stem = "store" if self.owner == "store" else self.owner.split(" ", 1)[1]
        return str(DATABASES / f"{stem}.dump")


def postgres_databases(deployment: Deployment) -> list[Database]:
    found = [
        Database(f"homeserver {name}", hs.database)
        for name, hs in deployment.homeservers.items()
        if hs.database != "sqlite"
    ]
    if deployment.store.database != "sqlite":
        found.append(Database("store", deployment.store.database))
    return found


def split_named_files(
    deployment: Deployment, config_dir: Path
) -> tuple[dict[PurePosixPath, Path], list[Path]]:
    """Named files beside homeport.yaml (kept, by their path from it) and those elsewhere.

    A file outside the deployment's folder (`/etc/ssl/...`) belongs to the
    machine: restoring it would write where Homeport does not own, so it is
    listed for the administrator instead.
    """
    inside: dict[PurePosixPath, Path] = {}
    outside: list[Path] = []
    for path in sorted(set(named_files(deployment).values())):
        if path == deployment.data_dir or deployment.data_dir in path.parents:
            continue  # travels with the data folder
        if config_dir in path.parents:
            inside[CONFIG / PurePosixPath(path.relative_to(config_dir).as_posix())] = path
        else:
            outside.append(path)
    return inside, outside


@dataclass(frozen=True)
class Member:
    sha256: str
    size: int
    mode: int


@dataclass
class Manifest:
    """The archive's table of contents, checked before anything is restored."""

    homeport_version: str
    synapse_version: str
    created: str
    server_names: dict[str, str]
    # Homeserver name -> "sqlite" or "postgresql": a restore keeps the engine.
    engines: dict[str, str]
    store_engine: str
    with_media: bool
    files: dict[str, Member] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)  # member -> owner
    left_out: list[str] = field(default_factory=list)
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "homeport_version": self.homeport_version,
            "synapse_version": self.synapse_version,
            "created": self.created,
            "server_names": self.server_names,
            "engines": self.engines,
            "store_engine": self.store_engine,
            "with_media": self.with_media,
            "files": {
                name: {"sha256": m.sha256, "size": m.size, "mode": m.mode}
                for name, m in sorted(self.files.items())
            },
            "databases": self.databases,
            "left_out": self.left_out,
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Parse, refusing anything but the shape `to_json` writes (the archive may be forged)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a Homeport backup of format {FORMAT}")
        try:
            files = {
                check_member_name(name): Member(str(m["sha256"]), int(m["size"]), int(m["mode"]))
                for name, m in data["files"].items()
            }
            manifest = cls(
                homeport_version=str(data["homeport_version"]),
                synapse_version=str(data["synapse_version"]),
                created=str(data["created"]),
                server_names={str(k): str(v) for k, v in data["server_names"].items()},
                engines={str(k): str(v) for k, v in data["engines"].items()},
                store_engine=str(data["store_engine"]),
                with_media=bool(data["with_media"]),
                files=files,
                databases={check_member_name(str(k)): str(v) for k, v in data["databases"].items()},
                left_out=[str(p) for p in data["left_out"]],
            )
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(f"the manifest is damaged: {error}") from None
        for name in manifest.databases:
            if name not in manifest.files:
                raise ValueError(f"the manifest lists database {name} without its file")
        return manifest


def check_member_name(name: str) -> str:
    """A member a restore may write: relative, under config/, data/ or databases/, no '..'."""
    path = PurePosixPath(name)
    if (
        path.is_absolute()
        or len(path.parts) < 2
        or path.parts[0] not in (CONFIG.name, DATA.name, DATABASES.name)
        or any(part in ("", ".", "..") or not _SAFE_PART.match(part) for part in path.parts)
        or str(path) != name
    ):
        raise ValueError(f"unsafe member name {name!r}")
    return name


def engine_of(database: str) -> Literal["sqlite", "postgresql"]:
    return "sqlite" if database == "sqlite" else "postgresql"


def restore_problems(manifest: Manifest, deployment: Deployment) -> list[str]:
    """Why the backup must not be restored under this homeport.yaml; [] when it fits.

    A signing key belongs to its server name: restored under another name it
    would be a different server in federation, and the old name's events
    could not be verified. Moving between SQLite and PostgreSQL is
    `synapse_port_db`'s job, not a restore's.
    """
    problems = []
    for name, server_name in manifest.server_names.items():
        hs = deployment.homeservers.get(name)
        if hs is None:
            problems.append(
                f"the backup holds homeserver {name!r} ({server_name}) and homeport.yaml has "
                "none of that name: its data would be dropped; keep it in the file"
            )
            continue
        if hs.server_name != server_name:
            problems.append(
                f"homeserver {name!r} is {server_name} in the backup and {hs.server_name} in "
                "homeport.yaml: a server name cannot change, its signing key and every "
                f"user ID belong to it; set server_name: {server_name}"
            )
        engine = engine_of(hs.database)
        if engine != manifest.engines.get(name):
            problems.append(
                f"homeserver {name!r} was on {manifest.engines.get(name)} and homeport.yaml "
                f"puts it on {engine}: restore on the same engine, then move with "
                "Synapse's synapse_port_db"
            )
    if engine_of(deployment.store.database) != manifest.store_engine:
        problems.append(
            f"Homeport's store was on {manifest.store_engine} and homeport.yaml puts it on "
            f"{engine_of(deployment.store.database)}: restore on the same engine"
        )
    return problems


def dump_owners(deployment: Deployment) -> dict[str, Database]:
    """Member name -> the database of this deployment it is restored into."""
    return {db.member: db for db in postgres_databases(deployment)}
