"""Starting real deployments for tests: `homeport init`, then `homeport up` as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
from ruamel.yaml import YAML

from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment
from homeport.layout import DeploymentLayout
from homeport.runtime.status import gather_status
from homeport.synapse.api import SynapseClient
from homeport.synapse.users import create_user, register_user
from homeport.trust import client_ssl_context
from tests.ports import free_port_run

T = TypeVar("T")

HOMEPORT = [sys.executable, "-m", "homeport"]

# Tests send bursts that an office never would; Synapse's rate limits and its
# 10-minute federation backoff would only make them slow and flaky.
TEST_SYNAPSE_SETTINGS: dict[str, Any] = {
    "rc_message": {"per_second": 1000, "burst_count": 1000},
    "rc_login": {
        "address": {"per_second": 1000, "burst_count": 1000},
        "account": {"per_second": 1000, "burst_count": 1000},
        "failed_attempts": {"per_second": 1000, "burst_count": 1000},
    },
    "rc_joins": {
        "local": {"per_second": 1000, "burst_count": 1000},
        "remote": {"per_second": 1000, "burst_count": 1000},
    },
    "rc_invites": {
        "per_room": {"per_second": 1000, "burst_count": 1000},
        "per_user": {"per_second": 1000, "burst_count": 1000},
        "per_issuer": {"per_second": 1000, "burst_count": 1000},
    },
    "rc_registration": {"per_second": 1000, "burst_count": 1000},
}
# Mark a destination as failing after a second, not half a minute of
# retries, and retry it a second later (lint warns: fine for tests).
TEST_FEDERATION_RETRIES: dict[str, Any] = {
    "destination_min_retry_interval": "1s",
    "max_long_retries": 1,
    "max_long_retry_delay": "1s",
}


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside an async test."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def homeport(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*HOMEPORT, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"homeport {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def edit_yaml(path: Path, edit: Any) -> None:
    """Change homeport.yaml the way an administrator would: keep comments, change keys."""
    yaml = YAML(typ="rt")
    data = yaml.load(path.read_text())
    edit(data)
    with path.open("w") as handle:
        yaml.dump(data, handle)


def relax_for_tests(data: Any) -> None:
    for hs in data["homeservers"].values():
        hs["synapse"] = dict(TEST_SYNAPSE_SETTINGS)
        hs["federation_retries"] = dict(TEST_FEDERATION_RETRIES)


def synapse_pids(data_dir: Path) -> list[int]:
    """Synapse processes (main and workers) whose config lives under `data_dir`."""
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        synapse = "synapse.app.homeserver" in cmdline or "synapse.app.generic_worker" in cmdline
        if synapse and any(str(data_dir) in a for a in cmdline):
            pids.append(proc.info["pid"])
    return pids


@dataclass
class RunningDeployment:
    """A `homeport up` running in the background for tests."""

    config_path: Path
    process: subprocess.Popen[bytes] | None = None
    output_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.output_path = self.config_path.parent / "up.out"

    @property
    def deployment(self) -> Deployment:
        return load_deployment(self.config_path)[0]

    @property
    def layout(self) -> DeploymentLayout:
        return DeploymentLayout(self.deployment.data_dir)

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def log_problems(self, per_file: int = 30) -> str:
        """Warnings and errors of every log of the deployment, for a failing test's message."""
        marks = (" - WARNING - ", " - ERROR - ", " - CRITICAL - ", "[error]", "[crit]")
        parts = []
        for path in sorted(self.deployment.data_dir.rglob("*.log")):
            lines = [
                line[:400]
                for line in path.read_text(errors="replace").splitlines()
                if any(mark in line for mark in marks)
            ]
            if lines:
                parts.append(f"--- {path}\n" + "\n".join(lines[-per_file:]))
        return "\n".join(parts) or "(no warning or error in the logs)"

    def start(self, timeout: float = 180, names: set[str] | None = None) -> None:
        for attempt in range(PORT_ATTEMPTS):
            seen = len(self.output())
            with self.output_path.open("ab") as out:
                self.process = subprocess.Popen(
                    [*HOMEPORT, "up", "-c", str(self.config_path)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "COLUMNS": "200"},
                )
            try:
                self.wait_ready(timeout, names)
                return
            except AssertionError:
                lost_a_port = PORT_TAKEN in self.output()[seen:]
                if not lost_a_port or attempt == PORT_ATTEMPTS - 1 or self._ever_started():
                    raise
                self.process = None
                move_ports(self.config_path)  # someone bound one since it was picked

    def _ever_started(self) -> bool:
        """Whether `up` ever started a homeserver here: its server name (which carries
        the port) is then in its database for good."""
        return self.layout.applied_file.exists()

    def wait_ready(self, timeout: float = 180, names: set[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        wanted = names or set(self.deployment.homeservers)
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"homeport up exited early:\n{self.output()}")
            status = run_sync(gather_status(self.deployment))
            if all(status["homeservers"][n]["ready"] for n in wanted):
                return
            time.sleep(0.5)
        raise AssertionError(f"not ready after {timeout} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill_leftovers(self) -> None:
        for pid in synapse_pids(self.deployment.data_dir):
            os.kill(pid, signal.SIGKILL)

    async def new_user(self, name: str, admin: bool = False) -> tuple[str, str]:
        """A fresh user (unique per test) on homeserver `name`: (user_id, password)."""
        localpart = f"u{secrets.token_hex(5)}"
        password = secrets.token_urlsafe(12)
        user_id = await create_user(self.deployment, name, localpart, password, admin)
        return user_id, password

    async def new_session(
        self, name: str, admin: bool = False, device_name: str = "test"
    ) -> tuple[str, str, str]:
        """A fresh user and the session its registration comes with: (user_id, access
        token, device ID). Synapse hashes the password once (a third of a second of CPU
        here), not again for a login: for tests that need a user, not a password login."""
        localpart, password = f"u{secrets.token_hex(5)}", secrets.token_urlsafe(12)
        user = await register_user(self.deployment, name, localpart, password, admin, device_name)
        return user.user_id, user.access_token, user.device_id


async def access_token(
    deployment: Deployment, name: str, user: str, password: str, device_name: str = "test"
) -> tuple[str, str]:
    """Password login on homeserver `name`: (access token, device ID)."""
    base_url = deployment.homeservers[name].base_url
    async with SynapseClient(base_url, client_ssl_context(deployment)) as client:
        login = await client.login(user, password, device_name)
    return login.access_token, login.device_id


@contextmanager
def running_deployment(config: Path) -> Iterator[RunningDeployment]:
    """`homeport up` on `config` for the block's duration; afterwards no Synapse is left."""
    running = RunningDeployment(config)
    running.start()
    try:
        yield running
        if running.process is not None:
            running.stop()
        assert synapse_pids(running.deployment.data_dir) == [], "Synapse left behind"
    finally:
        if running.process is not None:
            running.stop()
        running.kill_leftovers()


# What `up`'s preflight says when a port it is to bind is taken.
PORT_TAKEN = "is already in use by another program"
PORT_ATTEMPTS = 3
INIT_PORTS = 7  # two homeservers, the website, two audit bots, conference, alerts


def move_ports(config: Path) -> None:
    """Give a deployment that never started the next free run of ports: every
    `init` port (and the server names that carry them) moves together."""
    text = config.read_text()
    old = min(int(port) for port in re.findall(r"^\s+port: (\d+)", text, re.M))
    new = free_port_run(INIT_PORTS)
    for offset in range(INIT_PORTS):
        text = re.sub(rf"\b{old + offset}\b", f"<port {offset}>", text)
    for offset in range(INIT_PORTS):
        text = text.replace(f"<port {offset}>", str(new + offset))
    config.write_text(text)


def init_deployment(
    directory: Path, relaxed_because: str | None = None, model: str = "two"
) -> Path:
    """`homeport init` into `directory` on free ports; returns the config path.

    The deployment runs on exactly what `homeport init` writes (Homeport's rate
    limits, Synapse's real backoff) unless the test says why it cannot: then
    `TEST_SYNAPSE_SETTINGS` and `TEST_FEDERATION_RETRIES` apply, and the run's
    summary lists the test and its reason.
    """
    base = free_port_run(INIT_PORTS)
    homeport("init", str(directory), "--port", str(base), "--model", model)
    config = directory / "homeport.yaml"
    if relaxed_because is not None:
        if not relaxed_because.strip():
            raise ValueError("say why the test cannot run on the shipped settings")
        edit_yaml(config, relax_for_tests)
        note_relaxed(relaxed_because)
    return config


# Where each test process notes the deployments it relaxed (set by conftest.py
# for the whole run, workers included); read back for the run's summary.
RELAXED_LOG_ENV = "HOMEPORT_TEST_RELAXED_LOG"


def note_relaxed(reason: str) -> None:
    path = os.environ.get(RELAXED_LOG_ENV)
    if not path:
        return
    # "tests/e2e/test_x.py::test_y (setup)": the test that started the deployment.
    test = os.environ.get("PYTEST_CURRENT_TEST", "outside a test").rsplit(" (", 1)[0]
    with open(path, "a") as log:
        log.write(f"{test}\t{' '.join(reason.split())}\n")


def relaxed_deployments(path: Path) -> list[tuple[str, str]]:
    """(test, reason) for each relaxed deployment noted in the run, once each."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return sorted({tuple(line.split("\t", 1)) for line in lines if "\t" in line})  # type: ignore[misc]


def cleanup(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def status_json(config: Path) -> dict[str, Any]:
    result = homeport("status", "-c", str(config), "--json")
    data: dict[str, Any] = json.loads(result.stdout)
    return data
