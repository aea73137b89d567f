"""Internal spaces as a capability: the Homeport module's settings, and a website tab.

The rules themselves run inside Synapse (`synapse_module.internal_spaces`); drift is
found by `homeport lint` and `verify` (`verify.internal_spaces`) and shown, with its
remedy, on the website's Internal spaces tab (`spaces.website`).
"""

from __future__ import annotations

from homeport.capability import Capability, SynapsePieces, WebsitePages
from homeport.config.deployment import Deployment
from homeport.config.policy import internal_space
from homeport.layout import DeploymentLayout


def _any_internal(deployment: Deployment) -> bool:
    return any(hs.policy.rooms.internal_spaces for hs in deployment.homeservers.values())


class InternalSpaces(Capability):
    name = "spaces"
    website = WebsitePages(
        "spaces", "Internal spaces", "homeport.spaces.website", shown=_any_internal
    )

    def synapse(self, deployment: Deployment, name: str, layout: DeploymentLayout) -> SynapsePieces:
        """The Homeport module's `internal_spaces` (always said, empty without any)."""
        hs = deployment.homeservers[name]
        spaces = [internal_space(ref, hs.server_name) for ref in hs.policy.rooms.internal_spaces]
        return SynapsePieces(module_config={"internal_spaces": spaces})


CAPABILITY = InternalSpaces()
