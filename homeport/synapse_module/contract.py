"""What the rest of Homeport may know of the code inside Synapse: the module's entry
points, the HTTP paths it serves and the words it writes into events and errors.

Constants only, so that the HTTP clients, the render and the audit bot can name them
without importing code that runs inside Synapse (checked by the import contracts in
pyproject.toml).
"""

from __future__ import annotations

# What homeserver.yaml names under `modules:`.
HOMEPORT_MODULE = "homeport.synapse_module.module.HomeportModule"
DIRECTORY_LOGIN_MODULE = "homeport.synapse_module.directory_login.DirectoryLogin"

# The Homeport module's own endpoints (admin token required on each).
ROOM_COUNTS_PATH = "/_homeport/v1/destination_room_counts"
DESTINATIONS_PATH = "/_homeport/v1/destinations"
DELIVERY_PATH = "/_homeport/v1/delivery"
BACKGROUND_UPDATES_PATH = "/_homeport/v1/background_updates"
ROOM_MEMBER_PATH = "/_homeport/v1/room_member"
DIRECTORY_ACCOUNTS_PATH = "/_homeport/v1/directory_accounts"
DIRECTORY_LOGIN_PATH = "/_homeport/v1/directory_login"  # served by directory_login.py
INTERNAL_SPACES_PATH = "/_homeport/v1/internal_spaces"  # with internal spaces only
MIXED_ROOMS_PATH = "/_homeport/v1/mixed_rooms"  # ?allowed=SERVER...: rooms with others
MAX_DESTINATIONS = 200  # the longest page DESTINATIONS_PATH serves
MOST_UNDELIVERED = 100_000  # the most destinations DELIVERY_PATH lists at once

# The orders of DESTINATIONS_PATH that Synapse's admin API does not have.
NEXT_ATTEMPT = "next_attempt"
UNDELIVERED_SINCE = "undelivered_since"
# A page the caller orders: the destinations named (`name`), in that order, then
# those with nothing waiting, by name (`rest_from`, `rest_limit`). The website
# names the destinations that wait, in the order Homeport's store keeps them.
GIVEN_ORDER = "given"

# The audit bot's rules (audit_rules.py).
AUDIT_ADD_PATH = "/_homeport/v1/audit/add"
AUDIT_REMOVE_PATH = "/_homeport/v1/audit/remove"
AUDIT_ORIGINAL_PATH = "/_homeport/v1/audit/original"
MARK = "org.homeport.audit"  # key of the bot's member event content
INTEGRITY_EVENT = "org.homeport.audit.integrity"  # what the bot says when it undid something
NOT_LOCAL = "HOMEPORT_NOT_LOCAL_ROOM"  # errcode: the room was not created on this server
NO_INVITER = "HOMEPORT_NO_INVITER"  # errcode: no local member may invite the bot
