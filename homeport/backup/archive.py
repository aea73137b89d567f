"""Write and restore a backup archive: tar.gz, a manifest of SHA-256 sums, databases dumped.

A backup is taken while everything runs: SQLite files through SQLite's own
online backup (a consistent copy even mid-write), PostgreSQL through
`pg_dump` (one snapshot per database); the rest are files written once
(keys, media). A restore checks the whole archive and every target before
it writes anything, builds the folders aside and renames them into place at
the end, and loads each PostgreSQL dump in a single transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

import sqlalchemy
import sqlalchemy.exc

from homeport import __version__
from homeport.backup.contents import (
    CONFIG,
    DATA,
    MANIFEST,
    Database,
    Manifest,
    Member,
    dump_owners,
    engine_of,
    in_data_backup,
    postgres_databases,
    restore_problems,
    split_named_files,
)
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment_text
from homeport.config.types import parse_postgres_url, redacted
from homeport.errors import HomeportError
from homeport.files import ensure_dir
from homeport.layout import DeploymentLayout
from homeport.store.database import postgres_url

SQLITE_MAGIC = b"SQLite format 3\x00"
CHUNK = 1 << 20

Step = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class BackupResult:
    path: Path
    manifest: Manifest
    size: int


@dataclass
class RestoreResult:
    config_path: Path
    data_dir: Path
    manifest: Manifest
    databases: list[str] = field(default_factory=list)


# --- PostgreSQL -------------------------------------------------------------------------


def _pg_env(url: str) -> dict[str, str]:
    """libpq's variables: the password never appears on a command line (`ps` shows those)."""
    parts = parse_postgres_url(url)
    env = {**os.environ, "PGDATABASE": parts.database, "PGCONNECT_TIMEOUT": "10"}
    for key, value in (
        ("PGHOST", parts.host),
        ("PGPORT", parts.port),
        ("PGUSER", parts.user),
        ("PGPASSWORD", parts.password),
    ):
        if value is not None:
            env[key] = str(value)
    return env


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise HomeportError(
            f"{name} is not installed, and a database of this deployment is on PostgreSQL: "
            "install PostgreSQL's client tools (Debian: apt install postgresql-client), at "
            "the server's major version or newer"
        )
    return found


def _run_pg(command: list[str], url: str, what: str) -> None:
    result = subprocess.run(command, env=_pg_env(url), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HomeportError(f"{what} failed on {redacted(url)}: {result.stderr.strip()}")


def _table_count(url: str) -> int:
    engine = sqlalchemy.create_engine(
        postgres_url(url),
        connect_args={"connect_timeout": 10},
        poolclass=sqlalchemy.NullPool,
    )
    try:
        with engine.connect() as connection:
            count = connection.execute(
                sqlalchemy.text(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            ).scalar_one()
    except sqlalchemy.exc.OperationalError as error:
        raise HomeportError(
            f"cannot reach {redacted(url)}: {str(error.orig).strip()}; create the database "
            "(for Synapse: ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0) "
            "and check the URL in homeport.yaml"
        ) from None
    finally:
        engine.dispose()
    return int(count)


# --- Writing ----------------------------------------------------------------------------


class _Writer:
    """Adds members to the archive and sums them for the manifest."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.files: dict[str, Member] = {}

    def add_file(self, name: PurePosixPath, path: Path, mode: int | None = None) -> None:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
        info = self.tar.gettarinfo(str(path), arcname=str(name))
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if mode is not None:
            info.mode = mode
        with path.open("rb") as handle:
            self.tar.addfile(info, handle)
        self.files[str(name)] = Member(digest.hexdigest(), info.size, info.mode & 0o777)

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o600
        info.mtime = int(time.time())
        self.tar.addfile(info, io.BytesIO(data))


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
    step: Step = _quiet,
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
        pg_dump = _pg_tool("pg_dump")
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
                _run_pg(
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


# --- Restoring --------------------------------------------------------------------------


def read_manifest(archive: Path) -> Manifest:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.getmember(MANIFEST)
            handle = tar.extractfile(member)
            if handle is None:
                raise KeyError(MANIFEST)
            return Manifest.from_json(json.loads(handle.read()))
    except FileNotFoundError:
        raise HomeportError(f"{archive}: no such file") from None
    except (tarfile.TarError, KeyError, OSError, EOFError, json.JSONDecodeError) as error:
        raise HomeportError(
            f"{archive} is not a Homeport backup (made by `homeport backup`): {error}"
        ) from None
    except ValueError as error:
        raise HomeportError(f"{archive}: {error}") from None


def _archive_config(archive: Path) -> bytes:
    with tarfile.open(archive, "r:gz") as tar:
        handle = tar.extractfile(str(CONFIG / "homeport.yaml"))
        if handle is None:
            raise HomeportError(f"{archive} holds no homeport.yaml")
        return handle.read()


def _empty_or_absent(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _copy_checked(source: IO[bytes], target: Path, member: Member, name: str) -> None:
    digest = hashlib.sha256()
    size = 0
    ensure_dir(target.parent)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, member.mode & 0o700)
    with os.fdopen(descriptor, "wb") as out:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if digest.hexdigest() != member.sha256 or size != member.size:
        raise HomeportError(f"{name} in the backup is damaged (its SHA-256 does not match)")


def _aside(path: Path) -> Path:
    return path.parent / f".{path.name}.restoring-{secrets.token_hex(4)}"


def restore_backup(
    archive: Path,
    target: Path,
    config_override: Path | None = None,
    step: Step = _quiet,
) -> RestoreResult:
    """Restore `archive` as a deployment in `target` (absent or empty).

    `config_override`: the homeport.yaml to restore under instead of the
    archive's (new database URLs or ports on a new machine); its server
    names must be the backup's.
    """
    manifest = read_manifest(archive)
    target = target.resolve()
    config_path = target / "homeport.yaml"
    if config_override is not None:
        config_text = config_override.read_bytes()
        shown = config_override
    else:
        config_text = _archive_config(archive)
        shown = Path(f"{archive}:homeport.yaml")
    load_deployment_text(config_text.decode(), shown)  # errors name the file the user has
    deployment, _ = load_deployment_text(config_text.decode(), config_path)
    problems = restore_problems(manifest, deployment)
    owners = dump_owners(deployment)
    for member, owner in manifest.databases.items():
        if member not in owners:
            problems.append(f"the backup holds the PostgreSQL database of {owner}: no target")
    if problems:
        raise HomeportError("the backup does not fit homeport.yaml:\n- " + "\n- ".join(problems))
    if not _empty_or_absent(target):
        raise HomeportError(
            f"{target} is not empty: restore into a new folder, so nothing is overwritten"
        )
    data_dir = deployment.data_dir
    if data_dir == target:
        raise HomeportError(
            "data_dir is the folder homeport.yaml is in: give the data a folder of its own"
        )
    data_inside = target in data_dir.parents
    if not data_inside and not _empty_or_absent(data_dir):
        raise HomeportError(
            f"the data folder {data_dir} is not empty: move it away first, or set "
            "data_dir in the homeport.yaml you restore with (--config)"
        )
    to_load: list[tuple[str, Database]] = [
        (member, owners[member]) for member in manifest.databases
    ]
    if to_load:
        pg_restore = _pg_tool("pg_restore")
    for _, database in to_load:
        if _table_count(database.url) > 0:
            raise HomeportError(
                f"{redacted(database.url)} ({database.owner}) already holds tables: restore "
                "into an empty database, never over a live one"
            )

    staged_target = _aside(target)
    staged_data = staged_target / "data-staged" if data_inside else _aside(data_dir)
    loaded: list[str] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="homeport-restore-") as scratch,
            tarfile.open(archive, "r:gz") as tar,
        ):
            ensure_dir(staged_target)
            ensure_dir(staged_data)
            seen = set()
            step("checking and unpacking")
            for info in tar:
                if info.name == MANIFEST:
                    continue
                listed = manifest.files.get(info.name)
                if listed is None or not info.isfile():
                    raise HomeportError(f"the backup holds {info.name!r}, which its manifest lacks")
                path = PurePosixPath(info.name)
                relative = Path(*path.parts[1:])
                if path.parts[0] == CONFIG.name:
                    destination = staged_target / relative
                elif path.parts[0] == DATA.name:
                    destination = staged_data / relative
                else:
                    destination = Path(scratch) / relative
                source = tar.extractfile(info)
                assert source is not None
                _copy_checked(source, destination, listed, info.name)
                seen.add(info.name)
            missing = set(manifest.files) - seen
            if missing:
                raise HomeportError(f"the backup lacks {', '.join(sorted(missing))}: incomplete")
            if config_override is not None:
                (staged_target / "homeport.yaml").unlink()
                with os.fdopen(
                    os.open(staged_target / "homeport.yaml", os.O_WRONLY | os.O_CREAT, 0o600),
                    "wb",
                ) as handle:
                    handle.write(config_text)
            for member_name, database in to_load:
                step(f"PostgreSQL of {database.owner}")
                dump = Path(scratch) / Path(*PurePosixPath(member_name).parts[1:])
                _run_pg(
                    [
                        pg_restore,
                        "--single-transaction",
                        "--exit-on-error",
                        "--no-owner",
                        "--no-privileges",
                        "--dbname",
                        parse_postgres_url(database.url).database,
                        str(dump),
                    ],
                    database.url,
                    f"pg_restore of {database.owner}",
                )
                loaded.append(database.owner)
        step("moving into place")
        if data_inside:
            data_relative = data_dir.relative_to(target)
            ensure_dir((staged_target / data_relative).parent)
            os.rename(staged_data, staged_target / data_relative)
        else:
            if data_dir.exists():
                data_dir.rmdir()
            ensure_dir(data_dir.parent, mode=0o755)
            os.rename(staged_data, data_dir)
        if target.exists():
            target.rmdir()
        os.rename(staged_target, target)
    except BaseException as error:
        shutil.rmtree(staged_target, ignore_errors=True)
        if not data_inside:
            shutil.rmtree(staged_data, ignore_errors=True)
        if loaded and isinstance(error, HomeportError):
            raise HomeportError(
                f"{error}; already loaded: {', '.join(loaded)} (empty those databases before "
                "trying again)"
            ) from None
        raise
    return RestoreResult(config_path, data_dir, manifest, loaded)
