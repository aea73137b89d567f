"""The README's walk-through, run as written against a real pair (only ports differ).

The pair is the starter exactly as `homeport init` writes it: Homeport's own
rate limits and retry settings, none of the test suite's relaxed ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import RunningDeployment
from tests.walkthrough import run_walkthrough, walkthrough

pytestmark = pytest.mark.e2e


def test_readme_walkthrough_exchanges_messages(pair: RunningDeployment, tmp_path: Path) -> None:
    internal = pair.deployment.homeservers["internal"]
    external = pair.deployment.homeservers["external"]
    script = walkthrough("walkthrough")
    script = script.replace("8448", str(internal.port)).replace("8449", str(external.port))
    result = run_walkthrough(script, tmp_path, pair.config_path.parent, "deployment")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    bob_view = out.split("--- as bob sees it on external:")[1].split("--- as alice")[0]
    alice_view = out.split("--- as alice sees it on internal:")[1]
    for view in (bob_view, alice_view):
        assert f"@alice:{internal.server_name} : Hello from internal" in view
        assert f"@bob:{external.server_name} : Hello from external" in view
    assert "0 mismatches" in out
    # The audit bot recorded the board's minutes, and refused the lobby.
    assert "Minutes of the board" in out.split("The audit bot now records")[1]
    assert "refused: the lobby was created on external" in out
    assert f"created on {external.server_name}" in result.stderr
