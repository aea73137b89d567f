"""`homeport init`: a commented starter, and never overwriting the file, keys or secrets."""

from __future__ import annotations

import stat
from pathlib import Path

from homeport.config.loader import load_deployment
from homeport.layout import DeploymentLayout
from tests.harness import homeport


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and (p.parent.name in ("keys", "tls", "ca", "conference"))
    }


def test_init_writes_the_scenario_and_keeps_everything_on_a_second_run(tmp_path: Path) -> None:
    result = homeport("init", str(tmp_path), "--port", "18448")
    assert "Wrote" in result.stdout
    config = tmp_path / "homeport.yaml"
    text = config.read_text()
    assert text.count("\n#") > 5, "the starter file explains itself"
    deployment, _ = load_deployment(config)
    assert list(deployment.homeservers) == ["internal", "external"]
    assert deployment.homeservers["internal"].server_name == "localhost:18448"
    assert deployment.homeservers["external"].server_name == "localhost:18449"
    assert deployment.admin is not None
    assert deployment.admin.url == "https://localhost:18450"
    assert deployment.data_dir == tmp_path / "data"

    layout = DeploymentLayout(deployment.data_dir)
    secrets_before = _snapshot(layout.data_dir)
    # CA pair; per server 4 keys + TLS pair; the admin website's TLS pair; per audit
    # bot its two tokens and the registration that carries them (0600 too); the
    # conference service's TLS pair, the token Prosody presents and Jitsi's app secret
    assert len(secrets_before) == 2 + 2 * (4 + 2) + 2 + 2 * 3 + 2 + 2
    for name, content in secrets_before.items():
        path = layout.data_dir / name
        if not name.endswith(".crt"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        # No secret is ever copied into a rendered config.
        if "/keys/" in name and not name.endswith("signing.key"):
            for hs in deployment.homeservers:
                assert content not in layout.homeserver(hs).config_file.read_bytes()

    config.write_text(text + "# my own note\n")
    result = homeport("init", str(tmp_path), "--port", "20000")
    assert "Keeping the existing" in result.stdout
    assert config.read_text() == text + "# my own note\n"
    assert _snapshot(layout.data_dir) == secrets_before
