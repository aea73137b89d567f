"""What writing and restoring a backup share: the read size and the progress callback."""

from __future__ import annotations

from collections.abc import Callable

CHUNK = 1 << 20

Step = Callable[[str], None]


def quiet(_: str) -> None:
    return None
