"""`homeport render --target systemd`: one hardened unit that systemd itself accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from homeport.config.loader import load_deployment_text
from homeport.config.starter import starter_text
from homeport.targets.systemd import render_systemd
from tests.harness import homeport, init_deployment

PYTHON = Path(sys.executable)


def _unit(text: str, source: Path = Path("/srv/homeport/homeport.yaml")) -> dict[str, str]:
    model, _ = load_deployment_text(text, source)
    return dict(
        line.split("=", 1)
        for line in render_systemd(model, source, PYTHON)["homeport.service"].splitlines()
        if "=" in line and not line.startswith("#") and not line.startswith("ReadWrite")
    )


def test_the_unit_runs_up_confined_to_the_data_folder() -> None:
    model, _ = load_deployment_text(starter_text(), Path("/srv/homeport/homeport.yaml"))
    files = render_systemd(model, Path("/srv/homeport/homeport.yaml"), PYTHON)
    unit = files["homeport.service"]
    assert f"ExecStart={PYTHON} -m homeport up -c /srv/homeport/homeport.yaml" in unit
    assert "ReadWritePaths=/srv/homeport/data" in unit
    for hardening in (
        "User=homeport",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "UMask=0077",
    ):
        assert hardening in unit, hardening
    assert (
        files["homeport.sysusers.conf"]
        == 'u homeport - "Homeport homeservers" /srv/homeport/data\n'
    )
    assert files["homeport.tmpfiles.conf"] == (
        "d /srv/homeport/backups 0750 homeport homeport -\n"
        "d /srv/homeport/data 0750 homeport homeport -\n"
    )


def test_a_timer_runs_the_backup_under_the_same_confinement() -> None:
    text = starter_text() + "backup: {directory: /var/backups/homeport, schedule: '*-*-* 03:15'}\n"
    model, _ = load_deployment_text(text, Path("/srv/homeport/homeport.yaml"))
    files = render_systemd(model, Path("/srv/homeport/homeport.yaml"), PYTHON)
    service = files["homeport-backup.service"]
    assert f"ExecStart={PYTHON} -m homeport backup -c /srv/homeport/homeport.yaml" in service
    assert "Type=oneshot" in service
    assert "ReadWritePaths=/var/backups/homeport" in service
    assert "ReadWritePaths=/srv/homeport/data" in service  # SQLite's shared memory
    for hardening in ("User=homeport", "ProtectSystem=strict", "UMask=0077", "NoNewPrivileges=yes"):
        assert hardening in service, hardening
    assert "OnCalendar=*-*-* 03:15" in files["homeport-backup.timer"]
    assert "ReadWritePaths=/var/backups/homeport" in files["homeport.service"]


@pytest.mark.parametrize(
    ("why", "change", "key", "value"),
    [
        (
            "port 443 needs the one capability",
            ("port: 8448", "port: 443"),
            "AmbientCapabilities",
            "CAP_NET_BIND_SERVICE",
        ),
        ("high ports need none", ("", ""), "AmbientCapabilities", ""),
        (
            "a local PostgreSQL starts first",
            ("database: sqlite", "database: postgresql://h@localhost/x"),
            "After",
            "network-online.target postgresql.service",
        ),
        (
            "a remote one does not",
            ("database: sqlite", "database: postgresql://h@db.example.org/x"),
            "After",
            "network-online.target",
        ),
    ],
)
def test_edges(why: str, change: tuple[str, str], key: str, value: str) -> None:
    text = starter_text().replace(*change, 1) if change[0] else starter_text()
    if change[1] == "port: 443":
        text = text.replace('server_name: "localhost:8448"', 'server_name: "localhost:443"')
    assert _unit(text)[key] == value, why


def test_a_deployment_kept_in_a_home_folder_stays_readable() -> None:
    unit = _unit(starter_text(), Path("/home/ops/homeport/homeport.yaml"))
    assert unit["ProtectHome"] == "read-only"


def test_systemd_analyze_verify_accepts_every_unit_without_a_warning(tmp_path: Path) -> None:
    config = init_deployment(tmp_path / "deployment")
    out = tmp_path / "units"
    homeport("render", "-c", str(config), "--target", "systemd", "--out", str(out))
    units = sorted([*out.glob("*.service"), *out.glob("*.timer")])
    assert [u.name for u in units] == [
        "homeport-backup.service",
        "homeport-backup.timer",
        "homeport.service",
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # an unknown key is only a warning


def test_without_out_it_says_where_to_write(tmp_path: Path) -> None:
    config = init_deployment(tmp_path)
    result = homeport("render", "-c", str(config), "--target", "systemd", check=False)
    assert result.returncode == 1
    assert "--out DIR" in result.stderr
