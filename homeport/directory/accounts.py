"""Which Matrix account a directory person gets, if any: the one rule group sync
provisions by and directory login binds by, so the two never disagree."""

from __future__ import annotations

import re
from collections.abc import Iterable

from homeport.directory.model import Person
from homeport.identities import is_owned, owned_reason

# Matrix user IDs' historical grammar is wider; new ones must fit this one.
_LOCALPART = re.compile(r"^[a-z0-9._=/+-]+$")


def user_id_of(person: Person, server_name: str) -> str | None:
    localpart = person.localpart.lower()
    return f"@{localpart}:{server_name}" if _LOCALPART.match(localpart) else None


def skip_reason(person: Person, bot_localparts: Iterable[str]) -> str | None:
    """Why this person gets no Matrix account from group sync, if they get none."""
    localpart = person.localpart.lower()
    if not _LOCALPART.match(localpart):
        return f"{person.dn}: {person.localpart!r} cannot be a Matrix user name; skipped"
    if is_owned(localpart, bot_localparts):
        return f"{person.dn}: {owned_reason(localpart)}; skipped"
    return None
