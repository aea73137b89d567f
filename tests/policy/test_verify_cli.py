"""`homeport verify` refuses clearly when there is nothing to verify."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from homeport.cli import main
from tests.policy.test_lint import deployment_text


def test_verify_needs_a_running_deployment(tmp_path: Path) -> None:
    config = tmp_path / "homeport.yaml"
    config.write_text(deployment_text())
    result = CliRunner().invoke(main, ["verify", "-c", str(config)])
    assert result.exit_code == 1
    assert "not running" in result.output
    assert "homeport up" in result.output


def test_verify_needs_two_homeservers(tmp_path: Path) -> None:
    config = tmp_path / "homeport.yaml"
    config.write_text("homeservers:\n  solo:\n    server_name: localhost:8448\n    port: 8448\n")
    result = CliRunner().invoke(main, ["verify", "-c", str(config)])
    assert result.exit_code == 1
    assert "at least two homeservers" in result.output
