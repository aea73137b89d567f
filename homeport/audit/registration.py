"""The audit bot's application service registration. Pure: tokens come in, a dict goes out."""

from __future__ import annotations

import re
from typing import Any

from homeport.config.homeserver import Homeserver

REGISTRATION_ID = "homeport-audit"
BOT_ADDRESS = "127.0.0.1"  # Synapse reaches the bot on loopback only


def sender_localpart(bot_localpart: str) -> str:
    """The application service's own user, distinct from the bot it acts as."""
    return f"_homeport_{bot_localpart}"


def bot_url(hs: Homeserver) -> str:
    bot = hs.audit_bot
    assert bot is not None, "only a homeserver with an audit bot has a registration"
    return f"http://{BOT_ADDRESS}:{bot.port}"


def render_registration(hs: Homeserver, as_token: str, hs_token: str) -> dict[str, Any]:
    """What Synapse needs to send the bot's rooms' events and accept its requests.

    The namespace is the bot's user ID alone, exclusive: nobody else may
    register it. Synapse sends an application service the events of every
    room one of its users is joined to, which is exactly the audited rooms.
    `rate_limited: false`: the bot's joins and leaves are an administrator's.
    """
    bot = hs.audit_bot
    assert bot is not None, "only a homeserver with an audit bot has a registration"
    return {
        "id": REGISTRATION_ID,
        "url": bot_url(hs),
        "as_token": as_token,
        "hs_token": hs_token,
        # Not the bot itself: Synapse refuses /sync to an application service's
        # own sender user, and the bot syncs as a device to receive room keys.
        "sender_localpart": sender_localpart(bot.localpart),
        "namespaces": {
            "users": [
                {
                    "exclusive": True,
                    "regex": "^" + re.escape(f"@{bot.localpart}:{hs.server_name}") + "$",
                }
            ],
            "rooms": [],
            "aliases": [],
        },
        "rate_limited": False,
    }
