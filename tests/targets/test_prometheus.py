"""`homeport render --target prometheus`, and the `PrometheusRule` of `--target kubernetes`:
rules Prometheus' own `promtool` accepts, and that fire when the alerts service does.

`promtool test rules` replays what the alerts service exposes during an outage
(an incident's age growing 15 s per check, as `homeport_federation_incident_seconds`
shows it) and checks each rule fires once the grace is over, not before, holds
through a flap shorter than `settle`, and ends after it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeport.alerts.notices import ALERT_NAMES
from tests.harness import edit_yaml, homeport, init_deployment

PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:  # scripts/test installs Debian's prometheus package, which has it
    raise RuntimeError("promtool is missing: apt-get install --no-install-recommends prometheus")

EXTERNAL = 'homeserver="internal",destination="localhost:8449"'


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("prometheus")
    config = init_deployment(directory)
    edit_yaml(config, lambda data: data["alerts"].update({"grace": "2m", "settle": "1m"}))
    out = directory / "rules"
    homeport("render", "-c", str(config), "--target", "prometheus", "--out", str(out))
    return config, out


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_pass_promtools_check(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    checked = promtool("check", "rules", "homeport-rules.yml", cwd=out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    scrape = yaml.safe_load((out / "homeport-scrape.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"] == [{"targets": [job["static_configs"][0]["targets"][0]]}]
    assert job["static_configs"][0]["targets"][0].startswith("127.0.0.1:")


def _series(kind: str, values: str) -> dict[str, str]:
    return {
        "series": f'homeport_federation_incident_seconds{{{EXTERNAL},kind="{kind}"}}',
        "values": values,
    }


SUMMARIES = {
    "not_delivering": "localhost:8449 has received no events from internal for {}",
    "not_answering": "localhost:8449 has not answered for {} (seen from internal)",
    "never_worked": "localhost:8449 has never received anything from internal (first failure "
    "{} ago)",
}
DESCRIPTION = (
    "Homeport's alerts service tells the administrators' room #homeport-alerts of internal "
    "too (docs/alerts.md)."
)


def _firing(name: str, kind: str, at: str, lasted: str | None) -> dict[str, Any]:
    """The alert `name` at `at`: firing with the incident's age `lasted` in words, or not
    firing (None)."""
    labels = {
        "homeserver": "internal",
        "destination": "localhost:8449",
        "kind": kind,
        "severity": "warning",
        "source": "homeport",
    }
    annotations = {"summary": SUMMARIES[kind].format(lasted), "description": DESCRIPTION}
    expected = {"exp_labels": labels, "exp_annotations": annotations}
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [expected] if lasted is not None else [],
    }


def test_each_rule_fires_when_the_alerts_service_tells(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    rounds = "1+1x100"  # the service's last round, every 15 s
    tests: list[dict[str, Any]] = []
    for kind, name in ALERT_NAMES.items():
        tests.append(
            {
                "interval": "15s",
                "input_series": [
                    # An incident's age, 0 s to 5 min, then gone for 30 s (a flap shorter
                    # than settle: still one alert), back from 5m45s to 6m45s, then gone
                    # (the service drops a settling incident's gauge: Prometheus marks it
                    # stale at the next scrape).
                    _series(kind, "0+15x20 stale _ 330+15x4 stale _x20"),
                    {"series": "homeport_alerts_last_round_timestamp_seconds", "values": rounds},
                ],
                "alert_rule_test": [
                    _firing(name, kind, "1m45s", None),  # 105 s: within the 2 min grace
                    _firing(name, kind, "2m", "2m 0s"),
                    _firing(name, kind, "5m30s", "5m 0s"),  # gone, for less than settle
                    _firing(name, kind, "6m30s", "6m 15s"),
                    _firing(name, kind, "7m30s", "6m 30s"),  # gone since 7m: settling
                    _firing(name, kind, "8m", None),  # gone for longer than settle
                ],
            }
        )
    (out / "homeport-rules.test.yml").write_text(
        yaml.safe_dump(
            {"rule_files": ["homeport-rules.yml"], "evaluation_interval": "15s", "tests": tests}
        )
    )
    tested = promtool("test", "rules", "homeport-rules.test.yml", cwd=out)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_silent_alerts_service_is_an_alert_itself(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    test = {
        "interval": "15s",
        "input_series": [
            # Rounds every 15 s for 5 min, then none: the timestamp stops moving.
            {"series": "homeport_alerts_last_round_timestamp_seconds", "values": "0+15x20 300x40"},
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "HomeportAlertsNotChecking", "exp_alerts": []},
            {
                "eval_time": "8m",
                "alertname": "HomeportAlertsNotChecking",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "warning", "source": "homeport"},
                        "exp_annotations": {
                            "summary": "Homeport's alerts service has not checked the "
                            "homeservers for 3m 0s: federation incidents go untold"
                        },
                    }
                ],
            },
        ],
    }
    (out / "silent.test.yml").write_text(
        yaml.safe_dump(
            {"rule_files": ["homeport-rules.yml"], "evaluation_interval": "15s", "tests": [test]}
        )
    )
    tested = promtool("test", "rules", "silent.test.yml", cwd=out)
    assert tested.returncode == 0, tested.stdout + tested.stderr
