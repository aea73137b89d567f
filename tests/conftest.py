"""Shared fixtures: one session-scoped pair of real homeservers, fresh users per test."""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest

from homeport.trust import client_ssl_context
from tests.harness import (
    RELAXED_LOG_ENV,
    RunningDeployment,
    init_deployment,
    relaxed_deployments,
    running_deployment,
)

# The longest modules first: each worker runs one module at a time (--dist loadfile),
# and a long module started last would keep the suite waiting on it alone.
SLOW_FIRST = (
    "tests/e2e/test_verify.py",
    "tests/e2e/test_outage.py",
    "tests/e2e/test_verify_flips.py",
    "tests/e2e/test_workers.py",
    "tests/e2e/test_audit_crash.py",
    "tests/e2e/test_audit_load.py",
    "tests/e2e/test_lifecycle.py",
    "tests/e2e/test_admin.py",
    "tests/e2e/test_readme.py",
    "tests/e2e/test_postgres.py",
    "tests/e2e/test_groupsync.py",
    "tests/e2e/test_directory_seams.py",
    "tests/e2e/test_groupsync_turns.py",
    "tests/e2e/test_backup.py",
    "tests/e2e/test_federation.py",
    "tests/e2e/test_conference.py",
    "tests/e2e/test_audit.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        return SLOW_FIRST.index(module) if module in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: within a module, the order stays the file's


def pytest_configure(config: pytest.Config) -> None:
    """One file for the whole run where relaxed deployments are noted; test workers
    (started after this, by pytest-xdist) inherit its path."""
    if not hasattr(config, "workerinput") and RELAXED_LOG_ENV not in os.environ:
        handle, path = tempfile.mkstemp(prefix="homeport-relaxed-", suffix=".log")
        os.close(handle)
        os.environ[RELAXED_LOG_ENV] = path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Which tests ran on relaxed settings, and why: everything else ran as shipped."""
    if hasattr(terminalreporter.config, "workerinput"):
        return
    relaxed = relaxed_deployments(Path(os.environ[RELAXED_LOG_ENV]))
    terminalreporter.section("deployments on relaxed settings")
    if not relaxed:
        terminalreporter.write_line("none: every deployment ran on the settings Homeport ships")
    for test, reason in relaxed:
        terminalreporter.write_line(f"{test}: {reason}")


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    """The starter exactly as `homeport init` writes it (internal and external,
    federating over TLS, on Homeport's own rate limits and retry settings), shared
    by a test worker's tests. No test stops, pauses or reconfigures it."""
    config = init_deployment(tmp_path_factory.mktemp("pair"))
    with running_deployment(config) as running:
        assert all(hs.synapse == {} for hs in running.deployment.homeservers.values())
        yield running


@pytest.fixture(scope="session")
def pair_ssl(pair: RunningDeployment) -> ssl.SSLContext:
    return client_ssl_context(pair.deployment)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture
def postgres_databases() -> Iterator[Callable[[], str]]:
    """Makes fresh databases on this machine's PostgreSQL, with the C collation Synapse
    requires; each is dropped afterwards."""
    connection = psycopg2.connect(POSTGRES_ADMIN_DSN)
    connection.autocommit = True
    made: list[str] = []

    def make() -> str:
        name = f"homeport_test_{secrets.token_hex(4)}"
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE {name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0"
            )
        made.append(name)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    try:
        yield make
    finally:
        with connection.cursor() as cursor:
            for name in made:
                cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.close()


@pytest.fixture
def postgres_database(postgres_databases: Callable[[], str]) -> str:
    """One fresh PostgreSQL database (see `postgres_databases`)."""
    return postgres_databases()
