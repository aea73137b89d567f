"""Process lifecycle: stop/start of one homeserver, crashes, clean shutdown, no leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from homeport.files import write_private
from homeport.supervision.state import set_held, wake
from tests.harness import (
    HOMEPORT,
    RunningDeployment,
    edit_yaml,
    homeport,
    init_deployment,
    status_json,
    synapse_pids,
)

pytestmark = pytest.mark.e2e


def _wait(predicate: object, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_up_on_a_running_deployment_says_so(pair: RunningDeployment) -> None:
    pids = sorted(synapse_pids(pair.deployment.data_dir))
    result = homeport("up", "-c", str(pair.config_path), check=False, timeout=30)
    assert result.returncode == 1
    assert "already running" in result.stderr
    assert sorted(synapse_pids(pair.deployment.data_dir)) == pids


def test_commands_on_a_stopped_deployment_explain_how_to_start(tmp_path: Path) -> None:
    config = init_deployment(tmp_path)
    result = homeport("stop", "-c", str(config), "internal", check=False)
    assert result.returncode == 1
    assert "not running" in result.stderr
    assert "homeport up" in result.stderr
    result = homeport("stop", "-c", str(config), "nosuch", check=False)
    assert result.returncode == 2
    assert "no homeserver named 'nosuch'" in result.stderr
    assert "the service: admin" in result.stderr


@pytest.fixture
def own_deployment(tmp_path: Path) -> Iterator[RunningDeployment]:
    running = RunningDeployment(init_deployment(tmp_path))
    yield running
    if running.process is not None and running.process.poll() is None:
        running.process.kill()
    running.kill_leftovers()


def test_crash_restart_and_clean_shutdown(own_deployment: RunningDeployment) -> None:
    running = own_deployment
    data_dir = running.deployment.data_dir
    running.start()
    assert len(synapse_pids(data_dir)) == 2

    # The start that created the databases ran Synapse's background updates unpaced
    # (homeport/homeserver/first_start.py); no later start does.
    crashed = status_json(running.config_path)["homeservers"]["external"]["pid"]
    first_start = str(running.layout.homeserver("external").first_start_config)
    assert first_start in psutil.Process(crashed).cmdline()

    # A Synapse that dies is restarted with backoff and reported with its log.
    os.kill(crashed, signal.SIGKILL)
    _wait(
        lambda: status_json(running.config_path)["homeservers"]["external"]["restarts"] == 1,
        what="the restart to be counted",
    )
    running.wait_ready()
    restarted = status_json(running.config_path)["homeservers"]["external"]["pid"]
    assert restarted != crashed
    assert first_start not in psutil.Process(restarted).cmdline()
    assert "external exited with code -9" in running.output()
    assert "homeserver.log" in running.output()

    # Homeport's own services share one process (`homeport host`): killed, as a fault in
    # native code would end it, every one of them comes back in a new one, and the
    # homeservers never notice.
    hosted = ("audit-internal", "audit-external", "conference", "admin")
    before = status_json(running.config_path)
    website = before["services"]["admin"]
    assert (website["kind"], website["state"]) == ("admin website", "ready")
    assert {before["services"][name]["pid"] for name in hosted} == {website["pid"]}
    assert "homeport host" in " ".join(psutil.Process(website["pid"]).cmdline())
    os.kill(website["pid"], signal.SIGKILL)

    def all_back() -> bool:
        services = status_json(running.config_path)["services"]
        return all(
            (services[name]["state"], services[name]["restarts"]) == ("ready", 1) for name in hosted
        )

    _wait(all_back, what="Homeport's services to be restarted")
    after = status_json(running.config_path)
    host_pid = after["services"]["admin"]["pid"]
    assert host_pid != website["pid"]
    assert {after["services"][name]["pid"] for name in hosted} == {host_pid}
    for name in ("internal", "external"):
        assert after["homeservers"][name]["pid"] == before["homeservers"][name]["pid"]

    # An exception in one of them ends that one alone: internal's audit bot, its token
    # gone, fails at each start (the traceback in its own log) while the others serve
    # on in the same process; the token back, it starts again by itself.
    config = str(running.config_path)
    bot_files = running.layout.audit("internal")
    token = bot_files.hs_token.read_bytes()
    homeport("stop", "-c", config, "audit-internal")
    bot_files.hs_token.unlink()
    starting = subprocess.Popen(  # `start` waits for ready: the bot is not, yet
        [*HOMEPORT, "start", "-c", config, "audit-internal"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(
            lambda: status_json(running.config_path)["services"]["audit-internal"]["restarts"] >= 3,
            what="internal's bot to fail and be started again",
        )
        during = status_json(running.config_path)["services"]
        for name in ("audit-external", "conference", "admin"):
            assert (during[name]["state"], during[name]["pid"]) == ("ready", host_pid), name
        assert during["audit-internal"]["state"] != "ready"
        assert "FileNotFoundError" in bot_files.log_file.read_text()
        assert "hs_token" not in running.layout.audit("external").log_file.read_text()
        write_private(bot_files.hs_token, token)
        out, err = starting.communicate(timeout=120)
    finally:
        if starting.poll() is None:
            starting.kill()
    assert starting.returncode == 0, err
    assert "audit-internal is ready" in out
    assert status_json(running.config_path)["services"]["admin"]["pid"] == host_pid

    # One homeserver stopped and started while the other keeps running.
    before = status_json(running.config_path)["homeservers"]
    internal_pid, external_pid = before["internal"]["pid"], before["external"]["pid"]
    out = homeport("stop", "-c", config, "internal")
    assert "internal stopped" in out.stdout
    assert not psutil.pid_exists(internal_pid)
    during = status_json(running.config_path)["homeservers"]
    assert during["internal"]["running"] is False
    assert during["internal"]["held"] is True
    assert during["external"]["ready"] is True
    assert during["external"]["pid"] == external_pid
    # Held means held: the supervisor does not bring it back by itself.
    time.sleep(3)
    assert status_json(running.config_path)["homeservers"]["internal"]["running"] is False
    homeport("start", "-c", config, "internal")
    after = status_json(running.config_path)["homeservers"]
    assert after["internal"]["ready"] is True
    assert after["internal"]["pid"] != internal_pid
    assert after["external"]["pid"] == external_pid

    # Ctrl-C stops everything in order.
    assert running.stop(signal.SIGINT) == 0
    assert synapse_pids(data_dir) == []
    assert "All homeservers stopped." in running.output()
    assert status_json(running.config_path)["running"] is False

    # SIGTERM too.
    running.start()
    assert running.stop(signal.SIGTERM) == 0
    assert synapse_pids(data_dir) == []

    # Even when Homeport itself is killed outright, Synapse does not outlive it.
    running.start()
    assert running.stop(signal.SIGKILL) == -signal.SIGKILL
    _wait(lambda: synapse_pids(data_dir) == [], timeout=45, what="Synapse to exit")


def test_a_homeserver_that_never_starts_stops_everything_with_its_log(tmp_path: Path) -> None:
    config = init_deployment(tmp_path)

    def break_external(data: dict) -> None:  # type: ignore[type-arg]
        data["homeservers"]["external"]["synapse"]["max_upload_size"] = "lots"

    edit_yaml(config, break_external)
    running = RunningDeployment(config)
    try:
        result = homeport("up", "-c", str(config), check=False, timeout=180)
        assert result.returncode == 1
        assert "'external' exited 3 times before it was ready" in result.stderr
        assert "max_upload_size" in result.stderr
        assert synapse_pids(running.deployment.data_dir) == []
    finally:
        running.kill_leftovers()


def test_a_stop_during_startup_neither_kills_up_nor_is_lost(tmp_path: Path) -> None:
    """`homeport stop` signals `up` as soon as the lock names its pid, even mid-startup;
    a held homeserver stays held across a restart of `up`; verify says it is missing."""
    config = init_deployment(tmp_path)
    running = RunningDeployment(config)
    lock = running.layout.lock_file
    with running.output_path.open("ab") as out:
        process = subprocess.Popen(
            [*HOMEPORT, "up", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    running.process = process
    try:
        _wait(lambda: lock.exists() and lock.read_text().strip().isdigit(), 60, "the lock")
        # What `homeport stop external` does, at the earliest moment it can.
        set_held(running.layout, "external", True)
        wake(process.pid)
        running.wait_ready(names={"internal"})
        assert process.poll() is None, "up died of the early signal"
        status = status_json(config)
        assert status["homeservers"]["external"]["held"] is True
        assert status["homeservers"]["external"]["running"] is False
        # Verify needs every homeserver, and says which is not there.
        refused = homeport("verify", "-c", str(config), check=False)
        assert refused.returncode == 1
        assert "not ready: external" in refused.stderr
        # Held stays held across a restart of `up` itself.
        running.stop()
        running.start(names={"internal"})
        status = status_json(config)
        assert status["homeservers"]["internal"]["ready"] is True
        assert status["homeservers"]["external"]["held"] is True
        assert status["homeservers"]["external"]["running"] is False
        homeport("start", "-c", str(config), "external", timeout=240)
        assert status_json(config)["homeservers"]["external"]["ready"] is True
    finally:
        if running.process is not None:
            running.stop()
        running.kill_leftovers()
