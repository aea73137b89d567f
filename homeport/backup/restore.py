"""Restore a backup archive, checked before anything is written.

A restore checks the whole archive and every target before it writes
anything, builds the folders aside and renames them into place at the end,
and loads each PostgreSQL dump in a single transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from homeport.backup._shared import CHUNK, Step, quiet
from homeport.backup.contents import (
    CONFIG,
    DATA,
    MANIFEST,
    Database,
    Manifest,
    Member,
    dump_owners,
    restore_problems,
)
from homeport.backup.postgres import pg_tool, run_pg, table_count
from homeport.config.loader import load_deployment_text
from homeport.config.types import parse_postgres_url, redacted
from homeport.errors import HomeportError
from homeport.files import ensure_dir


@dataclass
class RestoreResult:
    config_path: Path
    data_dir: Path
    manifest: Manifest
    databases: list[str] = field(default_factory=list)


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
    step: Step = quiet,
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
        pg_restore = pg_tool("pg_restore")
    for _, database in to_load:
        if table_count(database.url) > 0:
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
                run_pg(
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
