"""The verify run: for every ordered pair of homeservers, expected versus observed.

Phases keep probes from disturbing each other: first what needs no shared
room (a shared room would let servers cache what they learn), then user
search, which needs a private room, then the probes that join rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from homeport.config.deployment import Deployment
from homeport.errors import HomeportError
from homeport.files import ensure_dir
from homeport.layout import DeploymentLayout
from homeport.policy.effective import side
from homeport.policy.surfaces import (
    SURFACES,
    Phase,
    ProbeIds,
    Surface,
    can_share_room,
    ordered_pairs,
)
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.service_account import service_client
from homeport.verify.observe import OBSERVERS
from homeport.verify.probes import (
    PairProbe,
    ServerProbe,
    set_up_server,
    sweep_leftovers,
    tear_down,
)
from homeport.verify.report import Check, Report

PHASES: tuple[Phase, ...] = ("look", "share", "join")
# A new homeserver's background updates take about a minute (one per second);
# a big database's migrations may take far longer, and verify says so.
BACKGROUND_UPDATES_TIMEOUT = 300.0


def _pair_probe(deployment: Deployment, viewer: ServerProbe, target: ServerProbe) -> PairProbe:
    target_policy = deployment.homeservers[target.name].policy
    directory = deployment.homeservers[viewer.name].policy.user_directory
    can_share = can_share_room(side(deployment, viewer.name), side(deployment, target.name))
    return PairProbe(
        viewer=viewer,
        target=target,
        can_share=can_share,
        target_creates_shared_room=target_policy.rooms.federation == "creator_choice",
        control_must_find=can_share and directory.enabled and not directory.exclude_remote_users,
    )


async def _check(deployment: Deployment, surface: Surface, pair: PairProbe) -> Check:
    ids = ProbeIds(pair.target.host.user_id, pair.target.public_room)
    expected = surface.expected(
        side(deployment, pair.viewer.name), side(deployment, pair.target.name), ids
    )
    try:
        observation = await OBSERVERS[surface.name](pair)
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


T = TypeVar("T")


@contextlib.contextmanager
def _one_verify_at_a_time(layout: DeploymentLayout) -> Iterator[None]:
    ensure_dir(layout.data_dir)
    fd = os.open(layout.verify_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HomeportError(
                "another `homeport verify` is running on this deployment; wait for it"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


async def verify(
    deployment: Deployment,
    ssl_context: ssl.SSLContext,
    progress: Callable[[str], None] = lambda _step: None,
) -> Report:
    """Probe every ordered pair through the viewers' client APIs; always clean up."""
    token = secrets.token_hex(4)
    async with contextlib.AsyncExitStack() as stack:

        async def admin(name: str) -> SynapseAdmin:
            try:
                return await stack.enter_async_context(
                    service_client(deployment, name, ssl_context)
                )
            except Exception as error:
                raise HomeportError(
                    f"verify cannot use Homeport's admin account on {name}: "
                    f"{type(error).__name__}: {error}"
                ) from error

        stack.enter_context(_one_verify_at_a_time(DeploymentLayout(deployment.data_dir)))
        probes = [
            ServerProbe(name, hs.server_name, token, await admin(name))
            for name, hs in deployment.homeservers.items()
        ]
        await wait_for_background_updates(probes, progress)
        progress("removing what an interrupted verify left")
        await asyncio.gather(*(sweep_leftovers(probe.admin) for probe in probes))
        checks = await _probe_all(deployment, probes, progress)
    order = {surface.name: index for index, surface in enumerate(SURFACES)}
    names = list(deployment.homeservers)
    checks.sort(key=lambda c: (names.index(c.viewer), names.index(c.target), order[c.surface]))
    return Report(checks, finished_at=time.time())


async def wait_for_background_updates(
    probes: list[ServerProbe],
    progress: Callable[[str], None],
    timeout: float = BACKGROUND_UPDATES_TIMEOUT,
) -> None:
    """Wait until no homeserver has background updates left to run.

    In its first minute a new Synapse rebuilds its user directory from scratch
    while live updates go on, and the rebuild drops what they wrote meanwhile:
    a user who joins a room then is missing from searches until they join
    another. Probed in that window, user search would show the rebuild, not
    the policy.
    """
    deadline = time.monotonic() + timeout
    while True:
        pending = await asyncio.gather(
            *(probe.admin.pending_background_updates() for probe in probes)
        )
        busy = {probe.name: names for probe, names in zip(probes, pending, strict=True) if names}
        if not busy:
            return
        summary = ", ".join(f"{name} ({len(names)} left)" for name, names in busy.items())
        if time.monotonic() > deadline:
            raise HomeportError(
                f"Synapse is still running background updates after {timeout:.0f} s: "
                f"{summary}; what users see changes until they finish (a database "
                "migration can take long). Run verify again when they are done."
            )
        progress(f"waiting for Synapse's background updates: {summary}")
        await asyncio.sleep(1.0)


async def _whole(work: Awaitable[T]) -> T:
    """Let `work` finish even when verify is interrupted, then stop.

    Cut short, a request may still create a user or a room in Synapse after
    the cleanup has run; finished, everything it made is known to the cleanup.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def _probe_all(
    deployment: Deployment, probes: list[ServerProbe], progress: Callable[[str], None]
) -> list[Check]:
    try:
        progress("creating probe users and rooms")
        results = await _whole(
            asyncio.gather(
                *(set_up_server(deployment, probe) for probe in probes),
                return_exceptions=True,
            )
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
            checks += await _whole(
                asyncio.gather(
                    *(
                        _check(deployment, surface, pair)
                        for pair in pairs
                        for surface in SURFACES
                        if surface.phase == phase
                    )
                )
            )
    finally:
        progress("removing probe users and rooms")
        await tear_down(probes)
    return checks
