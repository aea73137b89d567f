"""The one registry: every capability of Homeport, in the order `up` starts them.

A new capability is a package with a `capability.py` (see `homeport.capability`)
and one line here.
"""

from __future__ import annotations

from homeport.admin.capability import CAPABILITY as ADMIN_WEBSITE
from homeport.audit.capability import CAPABILITY as AUDIT
from homeport.capability import Capability
from homeport.conference.capability import CAPABILITY as CONFERENCE
from homeport.groupsync.capability import CAPABILITY as GROUP_SYNC
from homeport.homeserver.capability import HOMESERVERS, WORKERS

CAPABILITIES: tuple[Capability, ...] = (
    HOMESERVERS,
    WORKERS,
    AUDIT,
    GROUP_SYNC,
    CONFERENCE,
    ADMIN_WEBSITE,
)
