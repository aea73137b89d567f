"""`homeport backup` and `restore` on a deployment's folder (no Synapse: SQLite files).

The round trip keeps every key byte for byte and modes private; a restore
refuses, before writing anything, a folder that is not empty, an archive
whose sums do not match or that carries a member its manifest lacks, and a
homeport.yaml whose server names differ. The restore of a running
deployment with PostgreSQL is tests/e2e/test_backup.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from homeport.config.loader import load_deployment
from homeport.layout import DeploymentLayout
from tests.harness import edit_yaml, homeport, init_deployment


@pytest.fixture(scope="module")
def deployment_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised deployment with its keys made and a SQLite database holding rows."""
    directory = tmp_path_factory.mktemp("original")
    config = init_deployment(directory)
    (directory / "ldap.secret").write_text("bind password\n")
    edit_yaml(config, lambda data: data.update(trusted_ca_files=[]))
    homeport("render", "-c", str(config))
    layout = DeploymentLayout(load_deployment(config)[0].data_dir)
    database = layout.homeserver("internal").sqlite_database
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE events (body TEXT)")
        connection.executemany("INSERT INTO events VALUES (?)", [("hello",), ("world",)])
    media = layout.homeserver("internal").media_store / "local_content" / "ab" / "cd" / "ef"
    media.parent.mkdir(parents=True)
    media.write_bytes(b"\x89PNG media")
    (layout.homeserver("internal").log_dir).mkdir(exist_ok=True)
    (layout.homeserver("internal").log_file).write_text("a log line\n")
    return directory


@pytest.fixture(scope="module")
def archive(deployment_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backups") / "backup.tar.gz"
    homeport("backup", "-c", str(deployment_dir / "homeport.yaml"), "--out", str(out))
    return out


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_round_trip_keeps_keys_databases_and_media(
    deployment_dir: Path, archive: Path, tmp_path: Path
) -> None:
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    target = tmp_path / "restored"
    result = homeport("restore", str(archive), "--to", str(target))
    assert "Next: homeport up" in result.stdout.replace("\n", " ")
    original = DeploymentLayout(deployment_dir / "data")
    restored = DeploymentLayout(target / "data")
    keys = _digests(original.data_dir / "homeservers" / "internal" / "keys")
    assert keys
    assert keys == _digests(restored.data_dir / "homeservers" / "internal" / "keys")
    assert _digests(original.data_dir / "ca") == _digests(restored.data_dir / "ca")
    assert (target / "homeport.yaml").read_bytes() == (
        deployment_dir / "homeport.yaml"
    ).read_bytes()
    for key in (restored.ca_key, restored.homeserver("internal").signing_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    with sqlite3.connect(restored.homeserver("internal").sqlite_database) as connection:
        rows = connection.execute("SELECT body FROM events").fetchall()
    assert rows == [("hello",), ("world",)]
    media = restored.homeserver("internal").media_store / "local_content" / "ab" / "cd" / "ef"
    assert media.read_bytes() == b"\x89PNG media"
    # Logs and what `up` renders anew stay behind.
    assert not restored.homeserver("internal").log_file.exists()
    assert not restored.homeserver("internal").config_file.exists()
    # What is left besides: no staging folder next to the target.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["restored"]


def test_the_list_shows_what_the_backup_holds(archive: Path) -> None:
    shown = homeport("restore", str(archive), "--list").stdout
    assert "internal" in shown
    assert "sqlite" in shown


def test_backup_json_is_the_manifest(deployment_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.tar.gz"
    result = homeport(
        "backup",
        "-c",
        str(deployment_dir / "homeport.yaml"),
        "--out",
        str(out),
        "--without-media",
        "--json",
    )
    manifest = json.loads(result.stdout)
    assert manifest["with_media"] is False
    assert "data/homeservers/internal/keys/signing.key" in manifest["files"]
    assert not [name for name in manifest["files"] if "media_store" in name]
    again = homeport(
        "backup", "-c", str(deployment_dir / "homeport.yaml"), "--out", str(out), check=False
    )
    assert again.returncode == 1
    assert "never overwrites" in again.stderr


def test_a_target_that_is_not_empty_is_refused(archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = homeport("restore", str(archive), "--to", str(target), check=False)
    assert result.returncode == 1
    assert "is not empty" in result.stderr
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def _rewrite(archive: Path, out: Path, change: Any) -> None:
    """A copy of `archive` with `change(name, data) -> data | None` applied to each member."""
    with tarfile.open(archive, "r:gz") as source, tarfile.open(out, "w:gz") as target:
        for info in source:
            handle = source.extractfile(info)
            data = change(info.name, handle.read() if handle else b"")
            if data is None:
                continue
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))


def test_a_damaged_member_stops_the_restore_before_anything_is_written(
    archive: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.tar.gz"

    def flip(name: str, data: bytes) -> bytes:
        return b"forged" + data if name.endswith("signing.key") else data

    _rewrite(archive, damaged, flip)
    target = tmp_path / "restored"
    result = homeport("restore", str(damaged), "--to", str(target), check=False)
    assert result.returncode == 1
    assert "signing.key in the backup is damaged" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.tar.gz"]


def test_a_member_the_manifest_lacks_is_refused(archive: Path, tmp_path: Path) -> None:
    smuggled = tmp_path / "smuggled.tar.gz"
    with tarfile.open(archive, "r:gz") as source, tarfile.open(smuggled, "w:gz") as out:
        evil = tarfile.TarInfo("data/evil.sh")
        evil.size = 3
        out.addfile(evil, io.BytesIO(b"rm\n"))
        for info in source:
            out.addfile(info, source.extractfile(info))
    target = tmp_path / "restored"
    result = homeport("restore", str(smuggled), "--to", str(target), check=False)
    assert result.returncode == 1
    assert "which its manifest lacks" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smuggled.tar.gz"]


def test_a_different_server_name_is_refused(archive: Path, tmp_path: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        handle = tar.extractfile("config/homeport.yaml")
        assert handle is not None
        text = handle.read().decode()
    other = tmp_path / "other.yaml"
    other.write_text(text)

    def rename(data: Any) -> None:
        internal = data["homeservers"]["internal"]
        internal["server_name"] = f"renamed.example.org:{internal['port']}"

    edit_yaml(other, rename)
    result = homeport(
        "restore", str(archive), "--to", str(tmp_path / "r"), "--config", str(other), check=False
    )
    assert result.returncode == 1
    assert "a server name cannot change" in result.stderr
    assert not (tmp_path / "r").exists()


def test_not_a_backup(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not an archive")
    result = homeport("restore", str(bogus), "--to", str(tmp_path / "r"), check=False)
    assert result.returncode == 1
    assert "is not a Homeport backup" in result.stderr


def test_without_out_it_writes_into_the_backup_folder_and_keeps_the_newest(
    deployment_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "homeport.yaml"
    config.write_text((deployment_dir / "homeport.yaml").read_text())
    folder = tmp_path / "kept"

    def settings(data: Any) -> None:
        data["data_dir"] = str(deployment_dir / "data")
        data["backup"] = {"directory": "kept", "keep": 1, "media": False}

    edit_yaml(config, settings)
    folder.mkdir()
    (folder / "before-upgrade.tar.gz").write_bytes(b"the administrator's own")
    old = folder / "homeport-20000101T000000Z.tar.gz"
    old.write_bytes(b"an old scheduled one")
    manifest = json.loads(homeport("backup", "-c", str(config), "--json").stdout)
    assert manifest["with_media"] is False
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2
    assert names[0] == "before-upgrade.tar.gz"
    assert names[1].startswith("homeport-2")
    assert names[1] != old.name


def test_the_store_is_copied_after_every_homeserver_database(tmp_path: Path) -> None:
    """The audit bot answers Synapse once it has committed: a store copied after the
    homeservers' databases holds every event their copies count as delivered to it, and
    the export cursor copied before it is never past it (docs/audit.md). The archive's
    members are in the order they were copied."""
    config = init_deployment(tmp_path / "deployment")
    homeport("render", "-c", str(config))
    homeport("store", "migrate", "-c", str(config))
    deployment = load_deployment(config)[0]
    layout = DeploymentLayout(deployment.data_dir)
    for name in deployment.homeservers:
        with sqlite3.connect(layout.homeserver(name).sqlite_database) as connection:
            connection.execute("CREATE TABLE events (body TEXT)")
    cursor = layout.audit("internal").export_cursor
    cursor.parent.mkdir(parents=True, exist_ok=True)
    cursor.write_text('{"seq": 0, "decrypted_ts": 0, "decrypted_ids": []}')
    out = tmp_path / "backup.tar.gz"
    homeport("backup", "-c", str(config), "--out", str(out))
    with tarfile.open(out, "r:gz") as tar:
        members = [m.name for m in tar.getmembers()]
    first = members.index
    assert layout.store_database.exists()
    store = first("data/homeport.db")
    assert first("data/homeservers/internal/homeserver.db") < store
    assert first("data/homeservers/external/homeserver.db") < store
    assert first("data/audit/internal/export.cursor") < store
