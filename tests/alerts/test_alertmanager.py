"""The `alertmanager` webhook format against a real Alertmanager (Debian's).

The alerts service posts to Alertmanager's `POST /api/v2/alerts` what
`notices.webhook_body` makes; this starts Alertmanager on a free loopback port
and posts exactly that: a firing notice, then its recovery. Alertmanager must
take both (its API validates every alert) and show the alert with Homeport's
labels while it fires, and as resolved after.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from homeport.alerts.incidents import Incident, Notice
from homeport.alerts.notices import Context, webhook_body
from tests.harness import free_port_run

ALERTMANAGER = shutil.which("prometheus-alertmanager")
if ALERTMANAGER is None:  # scripts/test installs Debian's prometheus-alertmanager
    raise RuntimeError(
        "prometheus-alertmanager is missing: apt-get install --no-install-recommends "
        "prometheus-alertmanager"
    )

CONFIG = """\
route: {receiver: nobody, group_wait: 1s}
receivers: [{name: nobody}]
"""


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("alertmanager")
    (directory / "alertmanager.yml").write_text(CONFIG)
    port = free_port_run(1)
    assert ALERTMANAGER is not None
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={directory / 'alertmanager.yml'}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # alone: no gossip port
        ],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "alertmanager.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                log = (directory / "alertmanager.log").read_text()
                raise AssertionError(f"Alertmanager did not start:\n{log}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _alerts(url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v2/alerts", params={"silenced": "false"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return [a for a in answer.json() if a["labels"].get("source") == "homeport"]


def test_alertmanager_takes_an_alert_and_its_recovery(alertmanager: str) -> None:
    now = int(time.time() * 1000)
    incident = Incident(
        "internal", "localhost:8449", "not_answering", now - 150_000, now, alerted=True, id=3,
        detail="connection refused or no route to it",
    )  # fmt: skip
    context = Context("localhost:8448", now, "https://localhost:8450", notice_id=9)
    firing = webhook_body(Notice("internal", "firing", (incident,)), "alertmanager", context)
    posted = httpx.post(f"{alertmanager}/api/v2/alerts", json=firing, timeout=10)
    assert posted.status_code == 200, posted.text
    (alert,) = _alerts(alertmanager)
    assert alert["labels"] == {
        "alertname": "HomeportHomeserverNotAnswering",
        "homeserver": "internal",
        "server_name": "localhost:8448",
        "destination": "localhost:8449",
        "severity": "warning",
        "source": "homeport",
    }
    assert alert["status"]["state"] == "active"
    assert "has not answered since" in alert["annotations"]["summary"]
    assert alert["generatorURL"] == "https://localhost:8450/federation"

    ended = Incident(**{**incident.__dict__, "ended_ms": now})
    resolved = webhook_body(Notice("internal", "resolved", (ended,)), "alertmanager", context)
    posted = httpx.post(f"{alertmanager}/api/v2/alerts", json=resolved, timeout=10)
    assert posted.status_code == 200, posted.text
    # Ended now: Alertmanager lists it no more as active (it keeps resolved ones aside).
    deadline = time.monotonic() + 10
    while [a for a in _alerts(alertmanager) if a["status"]["state"] == "active"]:
        assert time.monotonic() < deadline, _alerts(alertmanager)
        time.sleep(0.2)


def test_a_malformed_alert_would_be_refused(alertmanager: str) -> None:
    """The check above means something: Alertmanager refuses what is not an alert."""
    posted = httpx.post(f"{alertmanager}/api/v2/alerts", json=[{"labels": "x"}], timeout=10)
    assert posted.status_code == 400, posted.text
