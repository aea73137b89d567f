"""The README's walk-throughs, run as written: a block of bash between markers, run from
a folder that looks like a checkout (`.venv/`, and the deployment's folder)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def walkthrough(marker: str) -> str:
    """The bash between `<!-- marker -->` and `<!-- /marker -->` in the README."""
    pattern = rf"<!-- {marker} -->\n```bash\n(.*?)```\n<!-- /{marker} -->"
    match = re.search(pattern, README.read_text(), re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


def run_walkthrough(
    script: str, where: Path, deployment: Path, as_folder: str
) -> subprocess.CompletedProcess[str]:
    """Run `script` in `where`, with `.venv` and `as_folder` (the deployment's folder)."""
    (where / ".venv").symlink_to(Path(sys.prefix))
    (where / as_folder).symlink_to(deployment)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
