"""Services log JSON lines: to their file on one machine, to standard error in a container."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homeport.logs import LOG_DESTINATION, log_to_file


def test_in_a_container_the_log_goes_to_standard_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(LOG_DESTINATION, "stderr")
    logger = log_to_file(tmp_path / "logs" / "service.log", "homeport.test-stderr")
    logger.info("ready", extra={"port": 8450})
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (entry["event"], entry["port"], entry["level"]) == ("ready", 8450, "info")
    assert not (tmp_path / "logs").exists()


def test_on_one_machine_it_goes_to_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LOG_DESTINATION, raising=False)
    logger = log_to_file(tmp_path / "logs" / "service.log", "homeport.test-file")
    logger.info("ready")
    for handler in logger.handlers:
        handler.flush()
    entry = json.loads((tmp_path / "logs" / "service.log").read_text().splitlines()[-1])
    assert entry["event"] == "ready"
