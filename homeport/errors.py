"""Domain errors. Only the command line turns them into messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class HomeportError(Exception):
    """Something went wrong that the user can act on; the message says how."""

    exit_code = EXIT_FAILURE


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, located as precisely as we can."""

    file: Path
    line: int | None
    key: str
    message: str
    hint: str = ""

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        key = f" {self.key}:" if self.key else ""
        text = f"{where}:{key} {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class ConfigError(HomeportError):
    """The configuration is wrong; every problem is reported at once."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


class NotRunningError(HomeportError):
    """A command needs a running deployment and there is none."""


class AlreadyRunningError(HomeportError):
    """`up` found the deployment already running."""


class PolicyError(HomeportError):
    """`homeport lint` found errors in the policy; nothing is started or rendered."""

    exit_code = EXIT_BAD_INPUT
