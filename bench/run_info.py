"""What every benchmark prints around its figures: the commit, and how busy the machine was.

A figure is only worth comparing with the code and the load it was measured
under: the commit (and whether the tree had uncommitted changes), and the
machine's load average before and after (on a shared 2-core machine, a load
above 2 at either end means the figures carry someone else's work).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def commit() -> str:
    """The short commit of the tree the bench runs from, marked when it has changes."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head} + uncommitted changes" if dirty else head


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} cores)"


@contextmanager
def announced() -> Iterator[None]:
    """Print the commit and the load average before the benchmark, the load after."""
    print(f"commit {commit()}; load average before: {load()}", flush=True)
    try:
        yield
    finally:
        print(f"load average after: {load()}", flush=True)
