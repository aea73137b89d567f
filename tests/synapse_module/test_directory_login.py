"""Directory login's memory of an outage: how long logins skip a directory that failed."""

from __future__ import annotations

from homeport.synapse_module.directory_login import RETRY_AFTER_SECONDS, DirectoryState


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_makes_logins_skip_the_directory_for_a_while_then_ask_again() -> None:
    clock = Clock()
    state = DirectoryState(clock)
    assert not state.skipping()
    assert state.as_json()["state"] == "unknown"
    state.failed("no directory server answered")
    assert state.skipping()
    assert state.as_json() == {
        "state": "unreachable",
        "last_ok_ts": None,
        "down_since_ts": 1_000_000,
        "error": "no directory server answered",
        "retry_after_s": RETRY_AFTER_SECONDS,
    }
    clock.now += RETRY_AFTER_SECONDS - 1
    assert state.skipping()
    clock.now += 1
    assert not state.skipping()  # the next login asks the directory again
    state.failed("still down")
    assert state.as_json()["down_since_ts"] == 1_000_000  # the outage's start is kept
    clock.now += RETRY_AFTER_SECONDS
    state.answered()
    assert not state.skipping()
    assert state.as_json()["state"] == "ok"
    assert state.as_json()["down_since_ts"] is None
