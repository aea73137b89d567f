"""What a lint check answers: findings, each pointing at the key to change.

Shared by every check module, so that all of them speak one type and the
command line, `homeport up` and the website print them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from homeport.config.deployment import Deployment

Severity = Literal["error", "warning"]
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """One problem: what, where (a key under `homeservers.<name>`), why it matters, the fix.

    A finding about a section of its own (the proxy) gives that section's
    key in `section`; `key` is then under it.
    """

    id: str
    severity: Severity
    homeserver: str
    key: KeyPath
    message: str
    explanation: str
    fix: str
    section: KeyPath | None = None

    @property
    def path(self) -> KeyPath:
        """The key's full path in homeport.yaml."""
        if self.section is not None:
            return (*self.section, *self.key)
        return ("homeservers", self.homeserver, *self.key)


Check = Callable[[Deployment, str], Iterator[Finding]]
