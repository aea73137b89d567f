"""The one registry: every capability of Homeport, in the order `up` starts them.

A new capability is a package with a `capability.py` (see `homeport.capability`)
and one line here.
"""

from __future__ import annotations

from typing import Any

from homeport.admin.capability import CAPABILITY as ADMIN_WEBSITE
from homeport.alerts.capability import CAPABILITY as ALERTS
from homeport.audit.capability import CAPABILITY as AUDIT
from homeport.capability import Capability, SynapsePieces, WebsitePages, merge_pieces
from homeport.conference.capability import CAPABILITY as CONFERENCE
from homeport.config.deployment import Deployment
from homeport.groupsync.capability import CAPABILITY as GROUP_SYNC
from homeport.homeserver.capability import HOMESERVERS, WORKERS
from homeport.homeserver.render import render_homeserver
from homeport.layout import DeploymentLayout
from homeport.spaces.capability import CAPABILITY as INTERNAL_SPACES

CAPABILITIES: tuple[Capability, ...] = (
    HOMESERVERS,
    WORKERS,
    AUDIT,
    GROUP_SYNC,
    CONFERENCE,
    INTERNAL_SPACES,
    ALERTS,
    ADMIN_WEBSITE,
)


def synapse_pieces(deployment: Deployment, name: str, layout: DeploymentLayout) -> SynapsePieces:
    """What every capability adds to homeserver `name`'s `homeserver.yaml`."""
    return merge_pieces([c.synapse(deployment, name, layout) for c in CAPABILITIES])


def homeserver_config(
    deployment: Deployment, name: str, layout: DeploymentLayout
) -> dict[str, Any]:
    """The complete `homeserver.yaml` of homeserver `name` (on this machine's `layout`)."""
    return render_homeserver(deployment, name, layout, synapse_pieces(deployment, name, layout))


def website_pages() -> list[WebsitePages]:
    """The admin website's tabs contributed by capabilities, in registry order."""
    return [c.website for c in CAPABILITIES if c.website is not None]
