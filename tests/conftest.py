"""Shared fixtures: one session-scoped pair of real homeservers, fresh users per test."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeport.trust import client_ssl_context
from tests.harness import RunningDeployment, init_deployment, synapse_pids


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    """`homeport init` + `homeport up`: internal and external, federating over TLS."""
    config = init_deployment(tmp_path_factory.mktemp("pair"))
    running = RunningDeployment(config)
    running.start()
    yield running
    try:
        if running.process is not None:
            running.stop()
        assert synapse_pids(running.deployment.data_dir) == [], "Synapse left behind"
    finally:
        running.kill_leftovers()


@pytest.fixture(scope="session")
def pair_ssl(pair: RunningDeployment) -> ssl.SSLContext:
    return client_ssl_context(pair.deployment)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
