"""Reading rendered Kubernetes manifests back, and validating them with kubernetes-validate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


def documents(out: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, object) of every YAML document under `out`."""
    return [
        (path, document)
        for path in sorted(out.rglob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def validate_strictly(out: Path) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate --strict on every manifest under `out` (kustomizations aside)."""
    manifests = [p for p in sorted(out.rglob("*.yaml")) if p.name != "kustomization.yaml"]
    return subprocess.run(
        [str(VALIDATE), "--strict", *map(str, manifests)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
