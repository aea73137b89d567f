"""What a backup takes, and when a restore refuses: pure rules, table-driven."""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath

import pytest

from homeport.backup.contents import (
    Manifest,
    archive_name,
    check_member_name,
    in_data_backup,
    restore_problems,
    split_named_files,
    to_prune,
)
from homeport.config.loader import load_deployment_text

YAML = """
homeservers:
  internal: {server_name: internal.example.org, port: 8448}
  external: {server_name: "example.org:8449", port: 8449, database: %s}
trusted_ca_files: [partner-ca.pem, /etc/ssl/other-ca.pem]
"""


def deployment(external_db: str = "sqlite", text: str = YAML) -> object:
    return load_deployment_text(text % external_db, Path("/srv/hp/homeport.yaml"))[0]


@pytest.mark.parametrize(
    ("path", "with_media", "kept"),
    [
        ("ca/ca.key", True, True),
        ("homeservers/internal/keys/signing.key", True, True),
        ("homeservers/internal/homeserver.db", True, True),
        ("homeservers/internal/homeserver.db-wal", True, False),
        ("homeservers/internal/homeserver.db-shm", True, False),
        ("homeservers/internal/homeserver.yaml", True, False),  # rendered by `up`
        ("homeservers/internal/log.config.yaml", True, False),
        ("homeservers/internal/logs/homeserver.log", True, False),
        ("homeservers/internal/media_store/local_content/ab/cd/ef", True, True),
        ("homeservers/internal/media_store/local_content/ab/cd/ef", False, False),
        ("homeservers/internal/tls/server.key", True, True),
        ("audit/internal/keys/crypto/bot.db", True, True),
        ("audit/internal/audit.log", True, False),
        ("homeport.db", True, True),
        ("run/state.json", True, False),
        ("logs/homeport.log", True, False),
        ("verify.lock", True, False),
        ("conference/auth_token", True, True),
    ],
)
def test_what_the_data_folder_gives(path: str, with_media: bool, kept: bool) -> None:
    assert in_data_backup(PurePosixPath(path), with_media) is kept


@pytest.mark.parametrize(
    "name",
    [
        "config/homeport.yaml",
        "data/homeservers/internal/keys/signing.key",
        "databases/external.dump",
        "data/homeservers/internal/media_store/local_content/ab/cd/efGH_ij",
    ],
)
def test_member_names_a_restore_writes(name: str) -> None:
    assert check_member_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "../outside",
        "data/../../outside",
        "data/./x",
        "homeport.yaml",  # outside the three folders
        "elsewhere/file",
        "data",
        "data//x",
        "data/x\nmore",
    ],
)
def test_member_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unsafe member name"):
        check_member_name(name)


def manifest(**changes: object) -> Manifest:
    values: dict[str, object] = {
        "homeport_version": "0.1.0",
        "synapse_version": "1.140.0",
        "created": "2026-12-01T00:00:00Z",
        "server_names": {"internal": "internal.example.org", "external": "example.org:8449"},
        "engines": {"internal": "sqlite", "external": "sqlite"},
        "store_engine": "sqlite",
        "with_media": True,
    }
    values.update(changes)
    return Manifest(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backup", "external_db", "expected"),
    [
        (manifest(), "sqlite", []),
        (
            manifest(
                server_names={"internal": "other.example.org", "external": "example.org:8449"}
            ),
            "sqlite",
            ["a server name cannot change"],
        ),
        (
            manifest(
                server_names={"internal": "internal.example.org", "gone": "gone.example.org"},
                engines={"internal": "sqlite", "gone": "sqlite"},
            ),
            "sqlite",
            ["homeserver 'gone'"],
        ),
        (manifest(), "postgresql://synapse@db/synapse", ["synapse_port_db"]),
        (manifest(store_engine="postgresql"), "sqlite", ["Homeport's store was on postgresql"]),
    ],
    ids=["fits", "server-name-changed", "homeserver-dropped", "engine-changed", "store-engine"],
)
def test_restore_problems(backup: Manifest, external_db: str, expected: list[str]) -> None:
    problems = restore_problems(backup, deployment(external_db))  # type: ignore[arg-type]
    assert len(problems) == len(expected), problems
    for problem, words in zip(problems, expected, strict=True):
        assert words in problem


def test_a_manifest_reads_back_and_refuses_forgeries() -> None:
    original = manifest()
    assert Manifest.from_json(original.to_json()) == original
    forged = original.to_json()
    forged["files"] = {"../../etc/cron.d/x": {"sha256": "0", "size": 1, "mode": 420}}
    with pytest.raises(ValueError, match="unsafe member name"):
        Manifest.from_json(forged)
    with pytest.raises(ValueError, match="not a Homeport backup"):
        Manifest.from_json({"format": 99})
    broken = original.to_json()
    del broken["server_names"]
    with pytest.raises(ValueError, match="damaged"):
        Manifest.from_json(broken)


def test_files_beside_homeport_yaml_are_kept_others_listed() -> None:
    model = deployment()
    inside, outside = split_named_files(model, Path("/srv/hp"))  # type: ignore[arg-type]
    assert inside == {PurePosixPath("config/partner-ca.pem"): Path("/srv/hp/partner-ca.pem")}
    assert outside == [Path("/etc/ssl/other-ca.pem")]


@pytest.mark.parametrize(
    ("names", "keep", "pruned"),
    [
        ([], 7, []),
        (["homeport-20261201T030000Z.tar.gz"], 1, []),
        (
            [
                "homeport-20261203T030000Z.tar.gz",
                "homeport-20261201T030000Z.tar.gz",
                "homeport-20261202T030000Z.tar.gz",
            ],
            2,
            ["homeport-20261201T030000Z.tar.gz"],
        ),
        # Files of anyone else, however old-looking, are never removed.
        (["before-upgrade.tar.gz", "homeport-old.tar.gz", "notes.txt"], 1, []),
    ],
)
def test_pruning_keeps_the_newest(names: list[str], keep: int, pruned: list[str]) -> None:
    assert to_prune(names, keep) == pruned


def test_archive_names_sort_by_time() -> None:
    assert archive_name(time.gmtime(0)) == "homeport-19700101T000000Z.tar.gz"
