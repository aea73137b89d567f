"""Shared fixtures: one session-scoped pair of real homeservers, fresh users per test."""

from __future__ import annotations

import json
import os
import secrets
import ssl
import tempfile
from collections import defaultdict
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

# How long each module took in the last complete green run (written by the run
# itself, see `pytest_sessionfinish`; kept in the repository). The longest
# modules start first: each worker runs one module at a time (--dist loadfile),
# and a long module started last would keep the suite waiting on it alone.
DURATIONS = Path(__file__).parent / "module_durations.json"
_spent: dict[str, float] = defaultdict(float)


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}

    def rank(item: pytest.Item) -> float:
        # A module the file does not know yet may be long: it starts first.
        return -float(known.get(_module(item.nodeid), float("inf")))

    items.sort(key=rank)  # stable: within a module, the order stays the file's


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Set-up, call and tear-down of every test, summed per module (on the controller,
    which pytest-xdist hands every worker's reports)."""
    _spent[_module(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After a complete green run of the whole suite, record each module's time."""
    config = session.config
    whole = config.args == [str(p) for p in config.getini("testpaths")] or not config.args
    option = config.option
    selected = option.keyword or option.markexpr or getattr(option, "lf", False)
    ran = not option.collectonly  # `--co` runs nothing: it knows no module's time
    if hasattr(config, "workerinput") or exitstatus != 0 or not whole or selected or not ran:
        return
    ordered = dict(sorted(((m, round(t, 1)) for m, t in _spent.items()), key=lambda i: -i[1]))
    DURATIONS.write_text(json.dumps(ordered, indent=1) + "\n")


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
    terminalreporter.section("slowest modules (set-up, tests and tear-down)")
    for module, seconds in sorted(_spent.items(), key=lambda i: -i[1])[:10]:
        terminalreporter.write_line(f"{seconds:7.1f} s  {module}")


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
