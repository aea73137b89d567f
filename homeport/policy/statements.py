"""The Policy page in words: the surfaces' expectations, said as sentences. Pure.

For one homeserver: what the users of each other homeserver of the file, and
of a server outside the deployment, see of it; and what its users see of
each other homeserver. Every sentence is `surface.sentence[expected]`, the
same expectation `homeport verify` checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeport.config.deployment import Deployment
from homeport.policy.effective import OUTSIDER, Side, side
from homeport.policy.surfaces import SURFACES


@dataclass(frozen=True)
class Statement:
    surface: str
    value: str
    text: str


@dataclass(frozen=True)
class Perspective:
    """What the viewer's users see of the target, every surface."""

    viewer: str
    target: str
    statements: list[Statement]

    @property
    def title(self) -> str:
        return f"What users of {self.viewer} see of {self.target}"


def perspective(viewer: Side, target: Side) -> Perspective:
    statements = []
    for surface in SURFACES:
        value = surface.expected(viewer, target, None)
        text = surface.sentences[value].format(viewer=viewer.label, target=target.label)
        statements.append(Statement(surface.name, value, text[:1].upper() + text[1:]))
    return Perspective(viewer.label, target.label, statements)


def policy_view(deployment: Deployment, name: str) -> list[Perspective]:
    """Others looking at `name` (each homeserver of the file, then an outsider with
    Synapse's defaults), then `name` looking at each other homeserver."""
    own = side(deployment, name)
    peers = [side(deployment, other) for other in deployment.homeservers if other != name]
    return [
        *(perspective(peer, own) for peer in peers),
        perspective(OUTSIDER, own),
        *(perspective(own, peer) for peer in peers),
    ]
