"""`homeport conference -c FILE`: the service alone, as on a cluster."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from homeport.config.loader import load_deployment
from homeport.layout import DeploymentLayout
from homeport.trust import client_ssl_context
from tests.harness import HOMEPORT, edit_yaml, homeport, init_deployment


def test_the_service_runs_alone_with_its_certificate_and_secrets(tmp_path: Path) -> None:
    config = init_deployment(tmp_path)
    process = subprocess.Popen(
        [*HOMEPORT, "conference", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deployment, _ = load_deployment(config)
        assert deployment.conference is not None
        layout = DeploymentLayout(deployment.data_dir)
        answer = None
        deadline = time.monotonic() + 60
        while answer is None and time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                with httpx.Client(verify=client_ssl_context(deployment), timeout=3) as http:
                    answer = http.get(f"{deployment.conference.url}/health")
            except (httpx.HTTPError, OSError):
                time.sleep(0.3)
        assert answer is not None
        assert answer.json() == {"status": "ok"}
        assert (layout.conference_auth_token.stat().st_mode & 0o777) == 0o600
        assert layout.conference_jitsi_well_known.read_text().strip() == (
            '{"auth": "openidtoken-jwt"}'
        )
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output
    assert "Conference service on https://localhost:" in output


def test_without_a_conference_section_it_says_what_to_add(tmp_path: Path) -> None:
    config = init_deployment(tmp_path)

    def drop(data: Any) -> None:
        del data["conference"]

    edit_yaml(config, drop)
    result = homeport("conference", "-c", str(config), check=False)
    assert result.returncode == 1
    assert "has no `conference:` section" in result.stderr
