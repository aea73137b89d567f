"""`homeport verify`: for every ordered pair of homeservers, expected versus observed.

Phases keep probes from disturbing each other: first what needs no shared
room (a shared room would let servers cache what they learn), then user
search, which needs a private room, then the probes that join rooms.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from homeport.config.deployment import Deployment
from homeport.errors import HomeportError
from homeport.policy.probes import (
    PairProbe,
    ServerProbe,
    close,
    new_server_probe,
    set_up_server,
    tear_down,
)
from homeport.policy.surfaces import SURFACES, Phase, ProbeIds, Surface, can_share_room

PHASES: tuple[Phase, ...] = ("look", "share", "join")


@dataclass(frozen=True)
class Check:
    viewer: str
    target: str
    surface: str
    expected: str
    observed: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Report:
    checks: list[Check]

    @property
    def mismatches(self) -> int:
        return sum(not check.ok for check in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {"checks": [asdict(c) for c in self.checks], "mismatches": self.mismatches}


def ordered_pairs(deployment: Deployment) -> list[tuple[str, str]]:
    names = list(deployment.homeservers)
    return [(viewer, target) for viewer in names for target in names if viewer != target]


def expectations(deployment: Deployment, viewer: str, target: str, ids: ProbeIds) -> dict[str, str]:
    """What the policy says the viewer's users see of the target, surface by surface. Pure."""
    return {s.name: s.expected(deployment, viewer, target, ids) for s in SURFACES}


def _pair_probe(deployment: Deployment, viewer: ServerProbe, target: ServerProbe) -> PairProbe:
    target_policy = deployment.homeservers[target.name].policy
    return PairProbe(
        viewer=viewer,
        target=target,
        can_share=can_share_room(deployment, viewer.name, target.name),
        target_creates_shared_room=target_policy.rooms.federation == "creator_choice",
    )


async def _check(deployment: Deployment, surface: Surface, pair: PairProbe) -> Check:
    ids = ProbeIds(pair.target.host.user_id, pair.target.public_room)
    expected = surface.expected(deployment, pair.viewer.name, pair.target.name, ids)
    try:
        observation = await surface.observe(pair)
        observed, detail = observation.value, observation.detail
    except Exception as error:
        observed, detail = "error", f"{type(error).__name__}: {error}"
    return Check(
        pair.viewer.name,
        pair.target.name,
        surface.name,
        expected,
        observed,
        observed == expected,
        detail,
    )


async def verify(
    deployment: Deployment,
    ssl_context: ssl.SSLContext,
    progress: Callable[[str], None] = lambda _step: None,
) -> Report:
    """Probe every ordered pair through the viewers' client APIs; always clean up."""
    token = secrets.token_hex(4)
    probes = [
        new_server_probe(deployment, name, token, ssl_context) for name in deployment.homeservers
    ]
    try:
        progress("creating probe users and rooms")
        results = await asyncio.gather(
            *(set_up_server(deployment, probe) for probe in probes),
            return_exceptions=True,
        )
        for probe, result in zip(probes, results, strict=True):
            if isinstance(result, BaseException):
                raise HomeportError(
                    f"could not create verify's probe users and rooms on {probe.name}: "
                    f"{type(result).__name__}: {result}"
                ) from result
        by_name = {probe.name: probe for probe in probes}
        pairs = [
            _pair_probe(deployment, by_name[viewer], by_name[target])
            for viewer, target in ordered_pairs(deployment)
        ]
        checks: list[Check] = []
        for phase in PHASES:
            progress(f"probing: {phase}")
            checks += await asyncio.gather(
                *(
                    _check(deployment, surface, pair)
                    for pair in pairs
                    for surface in SURFACES
                    if surface.phase == phase
                )
            )
    finally:
        progress("removing probe users and rooms")
        await tear_down(probes)
        await close(probes)
    order = {surface.name: index for index, surface in enumerate(SURFACES)}
    names = list(deployment.homeservers)
    checks.sort(key=lambda c: (names.index(c.viewer), names.index(c.target), order[c.surface]))
    return Report(checks)
