"""Podman, as the container tests call it: a thin adapter over its command line.

Debian's podman runs containers on this machine with the settings in
containers.conf next to this file (scripts/test installs podman and runc).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

CONF = Path(__file__).parent / "containers.conf"


class PodmanError(RuntimeError):
    """A podman command that failed, with what it printed."""


def podman(
    *args: str, timeout: float = 120, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CONTAINERS_CONF": str(CONF)},
        cwd=cwd,
        check=False,
    )
    if check and done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-4000:]
        raise PodmanError(f"podman {' '.join(args[:3])} … failed ({done.returncode}):\n{output}")
    return done


def image_label(tag: str, label: str) -> str | None:
    """A label of a local image, or None when the image (or the label) is not there."""
    done = podman("image", "inspect", tag, check=False)
    if done.returncode != 0:
        return None
    labels = json.loads(done.stdout)[0].get("Labels") or {}
    value = labels.get(label)
    return str(value) if value is not None else None


def inspect_image(tag: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(podman("image", "inspect", tag).stdout)[0]
    return found
