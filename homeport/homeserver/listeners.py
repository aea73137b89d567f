"""What a homeserver's HTTP listeners serve, shared by the main process and its workers."""

from __future__ import annotations

from homeport.config.deployment import Deployment


def listener_resources(deployment: Deployment) -> list[str]:
    """Client and federation; `openid` named too where the conference service checks tokens.

    `federation` already serves `openid/userinfo` (Synapse adds `openid` alone
    only without it); naming it keeps the need visible should a layout split
    federation off this listener. A closed `federation_domain_whitelist` does
    not block `openid/userinfo`, and naming it opens nothing more.
    """
    names = ["client", "federation"]
    if deployment.conference is not None:
        names.append("openid")
    return names
