"""The accounts Homeport owns on a homeserver, declared in one place.

Homeport's service account (`homeport`, and `homeport-<hex>` when one had to be
replaced), each audit bot and its application service sender (`_homeport_*`),
and verify's probes (`homeport-probe-*`). No other capability may become,
create, rename, join or remove them: directory login refuses them, group
sync never maps a directory person onto them, `homeport user create` refuses
their names.

Standard library only: the Homeport module loaded into Synapse imports it too,
so login inside Synapse and group sync outside it apply the same rule. Names
are compared in any letter case, since a directory may hold `HOMEPORT` and
Synapse lower-cases localparts at login.
"""

from __future__ import annotations

from collections.abc import Iterable

SERVICE_LOCALPART = "homeport"
# The appservice sender of an audit bot is `_homeport_<bot localpart>`; verify's
# probes are `homeport-probe-<token>-<role>`; a replaced service account is
# `homeport-<6 hex>`. One prefix each covers them and whatever later capabilities add.
OWNED_PREFIXES = (f"{SERVICE_LOCALPART}-", f"_{SERVICE_LOCALPART}")

# Where Synapse records which accounts the directory created (its `user_external_ids`,
# the same table single sign-on uses): a directory person binds only to those.
DIRECTORY_AUTH_PROVIDER = "homeport-directory"


def localpart_of(user_id_or_localpart: str) -> str:
    """`@alice:example.org` or `alice` -> `alice`, lower-cased."""
    name = user_id_or_localpart.strip()
    if name.startswith("@"):
        name = name[1:].split(":", 1)[0]
    return name.lower()


def is_owned(user_id_or_localpart: str, bot_localparts: Iterable[str] = ()) -> bool:
    """Whether the account belongs to Homeport itself (any letter case).

    `bot_localparts` are the audit bots' names (`audit` by default), which an
    administrator chooses; the rest follows from Homeport's own prefixes.
    """
    name = localpart_of(user_id_or_localpart)
    if name == SERVICE_LOCALPART or name.startswith(OWNED_PREFIXES):
        return True
    return name in {bot.lower() for bot in bot_localparts}


def owned_reason(localpart: str) -> str:
    """Why a name is not for people, in words an administrator can act on."""
    return (
        f"{localpart!r} is an account Homeport owns (its service account, an audit bot or "
        "their senders, verify's probes: `homeport`, `homeport-*`, `_homeport*` and each "
        "audit bot's name); choose another name"
    )
