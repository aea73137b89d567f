#!/usr/bin/env python3
"""How long Homeport's images take to build from nothing, and how big they are.

Builds deploy/homeport.Dockerfile and deploy/synapse.Dockerfile with podman,
`--no-cache` (every layer made again, as on a build machine without a cache),
on the stand-ins of their upstream bases that the tests make
(tests/containers/images.py). Baseline, the same run and the same base:
installing Synapse alone from PyPI (`pip install matrix-synapse[postgres,redis]`,
the versions of constraints.txt, with the compiler psycopg2 needs), which is
most of what the homeport image holds; for the Synapse image, its base's size
(what the image adds to upstream's). Then a rebuild after a change to
Homeport's code only (podman's layer cache), which is what a developer waits for.

    .venv/bin/python bench/images.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.containers.images import (  # noqa: E402
    default_tags,
    dockerfile_for,
    ensure_images,
    standins,
)
from tests.containers.podman import inspect_image, podman  # noqa: E402

PYTHON_BASE = "docker.io/library/python:3.11-slim-bookworm"


def _timed_build(*args: str, cwd: Path) -> float:
    started = time.monotonic()
    podman("build", "--pull=never", "--no-cache", *args, timeout=3600, cwd=cwd)
    return time.monotonic() - started


def _size(tag: str) -> float:
    return int(inspect_image(tag)["Size"]) / 1e6


def main() -> None:
    ensure_images(default_tags())  # the stand-ins, made once
    synapse_base = next(s.tag for s in standins() if "synapse" in s.tag)
    with tempfile.TemporaryDirectory() as folder:
        context = Path(folder)
        (context / "constraints.txt").write_bytes((ROOT / "constraints.txt").read_bytes())
        (context / "Containerfile").write_text(
            f"FROM {PYTHON_BASE}\nCOPY constraints.txt /c.txt\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends gcc libpq-dev"
            " && pip install --no-cache-dir -c /c.txt 'matrix-synapse[postgres,redis]'"
            " && rm -rf /var/lib/apt/lists/*\n"
        )
        baseline_tag = "localhost/homeport-bench:synapse-alone"
        baseline = _timed_build("-t", baseline_tag, ".", cwd=context)
    rows = [("Synapse alone from PyPI (baseline)", baseline, _size(baseline_tag), PYTHON_BASE)]
    for tag in default_tags():
        seconds = _timed_build("-f", dockerfile_for(tag), "-t", tag, ".", cwd=ROOT)
        base = synapse_base if "synapse" in tag else PYTHON_BASE
        rows.append((tag, seconds, _size(tag), base))
    podman("rmi", "--force", baseline_tag, check=False)

    # A change to Homeport's code only: what podman's layer cache leaves to do.
    marker = ROOT / "homeport" / "_bench_marker.py"
    marker.write_text("# made by bench/images.py, removed after it\n")
    try:
        rebuilds = []
        for tag in default_tags():
            started = time.monotonic()
            podman(
                "build",
                "--pull=never",
                "-f",
                dockerfile_for(tag),
                "-t",
                tag,
                ".",
                cwd=ROOT,
                timeout=3600,
            )
            rebuilds.append((tag, time.monotonic() - started))
    finally:
        marker.unlink()
        ensure_images(default_tags())  # the images of the code as it stands

    print(f"{'image':<40} {'build s':>8} {'x base.':>7} {'size MB':>8} {'base MB':>8} {'added':>7}")
    for tag, seconds, size, base in rows:
        base_size = _size(base)
        print(
            f"{tag:<40} {seconds:>8.0f} {seconds / baseline:>7.2f} {size:>8.0f} "
            f"{base_size:>8.0f} {size - base_size:>7.0f}"
        )
    for tag, seconds in rebuilds:
        print(f"rebuild of {tag} after a change to homeport/ only: {seconds:.0f} s")


if __name__ == "__main__":
    main()
