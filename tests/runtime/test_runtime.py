"""The runtime's pure parts: which services a deployment runs, restart policy, state files."""

from __future__ import annotations

import json
from pathlib import Path

from homeport.config.loader import load_deployment_text
from homeport.config.starter import starter_text
from homeport.layout import DeploymentLayout
from homeport.runtime.prepare import materialize
from homeport.runtime.registry import service_context, services
from homeport.supervision.service import RestartPolicy
from homeport.supervision.state import read_held, read_state, set_held
from homeport.trust import client_ssl_context


def test_the_starter_runs_two_homeservers_their_audit_bots_conference_and_website(
    tmp_path: Path,
) -> None:
    text = starter_text().replace("data_dir: data", f"data_dir: {tmp_path}")
    deployment, _ = load_deployment_text(text, tmp_path / "homeport.yaml")
    layout = materialize(deployment)
    context = service_context(tmp_path / "homeport.yaml", layout, client_ssl_context(deployment))
    found = services(deployment, context)
    assert [(s.name, s.kind, s.url) for s in found] == [
        ("internal", "homeserver", "https://localhost:8448"),
        ("external", "homeserver", "https://localhost:8449"),
        ("audit-internal", "audit bot", "http://127.0.0.1:8451"),
        ("audit-external", "audit bot", "http://127.0.0.1:8452"),
        ("conference", "conference service", "https://localhost:8453"),
        ("alerts", "federation alerts", "http://127.0.0.1:8454"),
        ("admin", "admin website", "https://localhost:8450"),
    ]
    assert [s.after for s in found[2:4]] == [("internal",), ("external",)]
    without_website = deployment.model_copy(
        update={"admin": None, "conference": None, "alerts": None}
    )
    assert [s.name for s in services(without_website, context)] == [
        "internal",
        "external",
        "audit-internal",
        "audit-external",
    ]


def test_restart_backoff_steps_then_stays_at_the_last() -> None:
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 9)] == [1, 2, 5, 10, 30, 60, 60, 60]


def test_held_services_and_state_from_another_homeport(tmp_path: Path) -> None:
    layout = DeploymentLayout(tmp_path)
    set_held(layout, "internal", True)
    set_held(layout, "admin", True)
    set_held(layout, "internal", False)
    assert read_held(layout) == {"admin"}
    assert read_state(layout) is None
    layout.state_file.write_text(json.dumps({"supervisor_pid": 1, "homeservers": {}}))
    assert read_state(layout) is None  # written by an older Homeport: not ours to read
    layout.state_file.write_text(json.dumps({"supervisor_pid": 1, "started_at": 0, "services": {}}))
    assert read_state(layout) == {"supervisor_pid": 1, "started_at": 0, "services": {}}
