"""Write a backup archive while everything runs.

SQLite files go through SQLite's own online backup (a consistent copy even
mid-write), PostgreSQL through `pg_dump` (one snapshot per database); the
rest are files written once (keys, media). The archive is written aside and
renamed into place, so a failed backup leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from homeport import __version__
from homeport.backup._shared import Step, quiet
from homeport.backup.contents import (
    CONFIG,
    DATA,
    MANIFEST,
    Manifest,
    Member,
    engine_of,
    in_data_backup,
    postgres_databases,
    split_named_files,
)
from homeport.backup.postgres import pg_tool, run_pg
from homeport.config.deployment import Deployment
from homeport.errors import HomeportError
from homeport.files import ensure_dir
from homeport.layout import DeploymentLayout

SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class BackupResult:
    path: Path
    manifest: Manifest
    size: int


class _Writer:
    """Adds members to the archive and sums them for the manifest."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.files: dict[str, Member] = {}

    def add_file(self, name: PurePosixPath, path: Path, mode: int | None = None) -> None:
        """One open file gives the member's size, bytes and digest: a file replaced or
        grown meanwhile (the audit bot's export cursor, a log) is stored as it was when
        opened, and its digest is of exactly those bytes."""
        with path.open("rb") as handle:
            info = self.tar.gettarinfo(arcname=str(name), fileobj=handle)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if mode is not None:
                info.mode = mode
            summed = _Summing(handle)
            self.tar.addfile(info, summed)
        self.files[str(name)] = Member(summed.digest.hexdigest(), info.size, info.mode & 0o777)

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o600
        info.mtime = int(time.time())
        self.tar.addfile(info, io.BytesIO(data))


class _Summing:
    """A file read through once, summed on the way (tarfile reads exactly the size)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: consistent although Synapse or `up` may be writing."""
    with (
        contextlib.closing(
            sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        ) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _data_files(data_dir: Path, with_media: bool) -> Iterator[tuple[PurePosixPath, Path]]:
    for root, dirs, names in os.walk(data_dir):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            relative = PurePosixPath(path.relative_to(data_dir).as_posix())
            if path.is_symlink() or not path.is_file():
                continue
            if in_data_backup(relative, with_media):
                yield relative, path


def create_backup(
    deployment: Deployment,
    config_path: Path,
    out: Path,
    synapse_version: str,
    with_media: bool = True,
    step: Step = quiet,
) -> BackupResult:
    """Write `out` (mode 0600: it holds every key); refuse to overwrite a file."""
    if out.exists():
        raise HomeportError(f"{out} exists: name a new file, a backup never overwrites one")
    if not deployment.data_dir.is_dir():
        raise HomeportError(
            f"{deployment.data_dir} is not there: nothing to back up (run `homeport up` first)"
        )
    databases = postgres_databases(deployment)
    if databases:
        pg_dump = pg_tool("pg_dump")
    config_dir = config_path.resolve().parent
    inside, outside = split_named_files(deployment, config_dir)
    manifest = Manifest(
        homeport_version=__version__,
        synapse_version=synapse_version,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        server_names={name: hs.server_name for name, hs in deployment.homeservers.items()},
        engines={name: engine_of(hs.database) for name, hs in deployment.homeservers.items()},
        store_engine=engine_of(deployment.store.database),
        with_media=with_media,
        left_out=[str(p) for p in outside],
    )
    ensure_dir(out.parent.resolve())
    fd, partial = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    os.fchmod(fd, 0o600)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="homeport-backup-") as scratch,
            os.fdopen(fd, "wb") as raw,
            tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar,
        ):
            writer = _Writer(tar)
            step("homeport.yaml and the files it names")
            writer.add_file(CONFIG / "homeport.yaml", config_path)
            for name, path in inside.items():
                writer.add_file(name, path)
            step(f"data folder {deployment.data_dir}")

            def add_sqlite(relative: PurePosixPath, path: Path) -> None:
                step(f"SQLite {relative}")
                copy = Path(scratch) / "copy.db"
                copy.unlink(missing_ok=True)
                _sqlite_copy(path, copy)
                writer.add_file(DATA / relative, copy, mode=0o600)

            # Homeport's store is copied after every homeserver's database (its PostgreSQL
            # dump comes last too): the audit bot answers Synapse only once it has
            # committed, so a store taken later holds every event that the homeservers'
            # copies count as delivered to it; taken first, the events delivered in
            # between would be in neither, and never sent again. The export cursor, also
            # copied before the store, is then never past it.
            store_file = DeploymentLayout(deployment.data_dir).store_database
            store_copy: tuple[PurePosixPath, Path] | None = None
            for relative, path in _data_files(deployment.data_dir, with_media):
                if path == store_file:
                    store_copy = (relative, path)
                elif _is_sqlite(path):
                    add_sqlite(relative, path)
                else:
                    writer.add_file(DATA / relative, path)
            for database in databases:
                step(f"PostgreSQL of {database.owner}")
                dump = Path(scratch) / "dump"
                dump.unlink(missing_ok=True)
                run_pg(
                    [pg_dump, "--format=custom", "--no-owner", "--no-privileges", "-f", str(dump)],
                    database.url,
                    f"pg_dump of {database.owner}",
                )
                writer.add_file(PurePosixPath(database.member), dump, mode=0o600)
                manifest.databases[database.member] = database.owner
            if store_copy is not None:
                add_sqlite(*store_copy)
            manifest.files = writer.files
            writer.add_bytes(MANIFEST, json.dumps(manifest.to_json(), indent=1).encode())
        os.replace(partial, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    return BackupResult(out, manifest, out.stat().st_size)
