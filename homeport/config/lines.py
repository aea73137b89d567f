"""Where each key of `homeport.yaml` stands, so that every problem names its line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from homeport.errors import ConfigProblem

KeyPath = tuple[str | int, ...]


class LineMap:
    """Where each key of the file stands, by its dotted path (1-based lines)."""

    def __init__(self, lines: dict[KeyPath, int]) -> None:
        self._lines = lines

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """The line of `path`, or of its nearest ancestor that the file spells out."""
        parts = tuple(path)
        while parts:
            if parts in self._lines:
                return self._lines[parts]
            parts = parts[:-1]
        return self._lines.get((), None)


def dotted(path: Iterable[str | int]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")


def problem_at(
    source: Path, lines: LineMap, path: KeyPath, message: str, hint: str = ""
) -> ConfigProblem:
    """A problem located at the key `path` of the file: its line and its dotted name."""
    return ConfigProblem(source, lines.line_of(path), dotted(path), message, hint)
