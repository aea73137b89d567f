"""Which process of a homeserver with workers serves a request. Pure.

The table is Synapse's worker documentation (docs/workers.md, "Available
worker applications", Synapse 1.157 to 1.163): the endpoints a generic
worker serves, those it serves for GET only, and the media repository's.
Everything else goes to the main process. Left on the main process on
purpose: room pagination (`/messages`: all requests for a room must reach
one process, and the purge admin API must not run meanwhile), the SSO
endpoints (one process for every SSO login), and the admin API but for the
media repository's (Homeport's services call the main process's listener;
the admin paths of the proxy answer administrators only). The proxy's rendering turns
the table into locations; the tests check it against the endpoints the
installed Synapse registers on a worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Target = Literal["main", "generic", "media"]

_V = "(api/v1|r0|v3|unstable)"
_V3 = "(r0|v3|unstable)"

GENERIC = (
    # Sync requests
    r"^/_matrix/client/(r0|v3)/sync$",
    r"^/_matrix/client/(api/v1|r0|v3)/events$",
    r"^/_matrix/client/(api/v1|r0|v3)/initialSync$",
    r"^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$",
    # Federation requests
    r"^/_matrix/federation/v1/version$",
    r"^/_matrix/federation/v1/event/",
    r"^/_matrix/federation/v1/state/",
    r"^/_matrix/federation/v1/state_ids/",
    r"^/_matrix/federation/v1/backfill/",
    r"^/_matrix/federation/v1/get_missing_events/",
    r"^/_matrix/federation/v1/publicRooms",
    r"^/_matrix/federation/v1/query/",
    r"^/_matrix/federation/v1/make_join/",
    r"^/_matrix/federation/v1/make_leave/",
    r"^/_matrix/federation/(v1|v2)/send_join/",
    r"^/_matrix/federation/(v1|v2)/send_leave/",
    r"^/_matrix/federation/v1/make_knock/",
    r"^/_matrix/federation/v1/send_knock/",
    r"^/_matrix/federation/(v1|v2)/invite/",
    r"^/_matrix/federation/v1/event_auth/",
    r"^/_matrix/federation/v1/timestamp_to_event/",
    r"^/_matrix/federation/v1/exchange_third_party_invite/",
    r"^/_matrix/federation/v1/user/devices/",
    r"^/_matrix/key/v2/query",
    r"^/_matrix/federation/v1/hierarchy/",
    # Inbound federation transactions
    r"^/_matrix/federation/v1/send/",
    # Client API requests
    rf"^/_matrix/client/{_V}/createRoom$",
    rf"^/_matrix/client/{_V}/publicRooms$",
    rf"^/_matrix/client/{_V}/rooms/.*/joined_members$",
    rf"^/_matrix/client/{_V}/rooms/.*/context/.*$",
    rf"^/_matrix/client/{_V}/rooms/.*/members$",
    rf"^/_matrix/client/{_V}/rooms/.*/state$",
    r"^/_matrix/client/v1/rooms/.*/hierarchy$",
    r"^/_matrix/client/(v1|unstable)/rooms/.*/relations/",
    r"^/_matrix/client/v1/rooms/.*/threads$",
    r"^/_matrix/client/unstable/im.nheko.summary/summary/.*$",
    r"^/_matrix/client/v1/room_summary/.*$",
    rf"^/_matrix/client/{_V3}/account/3pid$",
    rf"^/_matrix/client/{_V3}/account/whoami$",
    rf"^/_matrix/client/{_V3}/account/deactivate$",
    r"^/_matrix/client/(r0|v3)/delete_devices$",
    rf"^/_matrix/client/{_V}/devices(/|$)",
    r"^/_matrix/client/versions$",
    rf"^/_matrix/client/{_V}/voip/turnServer$",
    rf"^/_matrix/client/{_V}/rooms/.*/event/",
    rf"^/_matrix/client/{_V}/joined_rooms$",
    r"^/_matrix/client/v1/rooms/.*/timestamp_to_event$",
    r"^/_matrix/client/(api/v1|r0|v3|unstable/.*)/rooms/.*/aliases",
    rf"^/_matrix/client/{_V}/search$",
    rf"^/_matrix/client/{_V3}/user/.*/filter(/|$)",
    rf"^/_matrix/client/{_V}/directory/room/.*$",
    rf"^/_matrix/client/{_V3}/capabilities$",
    rf"^/_matrix/client/{_V3}/notifications$",
    # Encryption requests
    rf"^/_matrix/client/{_V3}/keys/query$",
    rf"^/_matrix/client/{_V3}/keys/changes$",
    rf"^/_matrix/client/{_V3}/keys/claim$",
    rf"^/_matrix/client/{_V3}/room_keys/",
    rf"^/_matrix/client/{_V3}/keys/upload",
    rf"^/_matrix/client/{_V}/keys/device_signing/upload$",
    rf"^/_matrix/client/{_V}/keys/signatures/upload$",
    # Registration/login requests
    rf"^/_matrix/client/{_V}/login$",
    rf"^/_matrix/client/{_V3}/register$",
    rf"^/_matrix/client/{_V3}/register/available$",
    r"^/_matrix/client/v1/register/m.login.registration_token/validity$",
    rf"^/_matrix/client/{_V3}/password_policy$",
    # Event sending requests
    rf"^/_matrix/client/{_V}/rooms/.*/redact",
    rf"^/_matrix/client/{_V}/rooms/.*/send",
    rf"^/_matrix/client/{_V}/rooms/.*/state/",
    rf"^/_matrix/client/{_V}/rooms/.*/(join|invite|leave|ban|unban|kick)$",
    rf"^/_matrix/client/{_V}/join/",
    rf"^/_matrix/client/{_V}/knock/",
    rf"^/_matrix/client/{_V}/profile/",
    # User directory search requests
    rf"^/_matrix/client/{_V3}/user_directory/search$",
    # Unstable MSC4140 support
    r"^/_matrix/client/unstable/org.matrix.msc4140/delayed_events(/.*/restart)?$",
)

# Served by a generic worker for GET requests only.
GENERIC_GET = (
    rf"^/_matrix/client/{_V}/pushrules/",
    rf"^/_matrix/client/{_V3}/.*/tags",
    rf"^/_matrix/client/{_V3}/.*/account_data",
    rf"^/_matrix/client/{_V}/presence/",
)

MEDIA = (
    r"^/_matrix/media/",
    r"^/_matrix/client/v1/media/",
    r"^/_matrix/federation/v1/media/",
    r"^/_synapse/admin/v1/purge_media_cache$",
    r"^/_synapse/admin/v1/room/.*/media.*$",
    r"^/_synapse/admin/v1/user/.*/media.*$",
    r"^/_synapse/admin/v1/media/.*$",
    r"^/_synapse/admin/v1/quarantine_media/.*$",
    r"^/_synapse/admin/v1/users/.*/media$",
)


@dataclass(frozen=True)
class Route:
    """A location of the proxy: requests whose path matches go to `target`."""

    pattern: str
    target: Target
    get_only: bool = False


def routes(generic: bool, media: bool) -> list[Route]:
    """In the order the proxy tries them (media first: its paths are the more specific)."""
    table: list[Route] = []
    if media:
        table += [Route(p, "media") for p in MEDIA]
    if generic:
        table += [Route(p, "generic") for p in GENERIC]
        table += [Route(p, "generic", get_only=True) for p in GENERIC_GET]
    return table


_COMPILED: dict[str, re.Pattern[str]] = {}


def route(table: list[Route], method: str, path: str) -> Target:
    """Where a request goes: the first route that matches it, else the main process."""
    for entry in table:
        pattern = _COMPILED.setdefault(entry.pattern, re.compile(entry.pattern))
        if pattern.search(path) and (not entry.get_only or method in ("GET", "HEAD")):
            return entry.target
    return "main"
