"""One reconcile: read the directory, read Synapse, plan, apply, record.

Shared by `homeport groupsync run` and the watching service, each in its turn
(`turns.turn`: one run at a time per homeserver). The directory is read whole
before anything is planned: if it cannot be (down, bind refused, partial
results), nothing is applied and the run is recorded as failed.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine

from homeport.config.deployment import Deployment
from homeport.config.groupsync import GroupRef, GroupSync
from homeport.config.policy import internal_space
from homeport.directory.ldap_connection import DirectoryUnavailable
from homeport.directory.ldap_reader import read_directory
from homeport.directory.model import Directory
from homeport.errors import HomeportError
from homeport.groupsync.apply import Executor
from homeport.groupsync.desired import DesiredState, desired_state, internal_aliases
from homeport.groupsync.history import GroupSyncHistory
from homeport.groupsync.matrix_state import read_matrix_state
from homeport.groupsync.plan import Action, Plan, Rules, plan
from homeport.groupsync.turns import Turn, turn
from homeport.identities import SERVICE_LOCALPART
from homeport.store.leases import LeaseHolder
from homeport.synapse.service_account import service_client
from homeport.synapse.spaces_api import SpacesApi


class GroupSyncError(HomeportError):
    """A run that could not be made safely; nothing was removed."""


@dataclass
class RunReport:
    plan: Plan
    desired: DesiredState
    run_id: int | None = None
    outcome: str = "ok"  # ok, guarded, failed (some actions), dry-run
    applied: int = 0
    failed: list[tuple[Action, str]] = field(default_factory=list)
    held: int = 0
    detail: str = ""
    turn: Turn = field(default_factory=Turn)  # whom the run waited for, and how long


def settings_of(deployment: Deployment) -> GroupSync:
    if deployment.group_sync is None:
        raise HomeportError(
            "this file has no `group_sync:` section; add one (docs/groupsync.md shows how)"
        )
    return deployment.group_sync


def protected_patterns(deployment: Deployment, sync: GroupSync) -> tuple[str, ...]:
    """Never removed: the file's patterns, Homeport's own accounts, every audit bot."""
    server = re.escape(deployment.homeservers[sync.homeserver].server_name)
    own = [
        rf"@{SERVICE_LOCALPART}(-[0-9a-f]{{6}})?:{server}",
        rf"@_homeport_.*:{server}",
        *(
            re.escape(hs.audit_user_id)
            for hs in deployment.homeservers.values()
            if hs.audit_user_id
        ),
    ]
    return (*sync.never_remove, *own)


def group_refs(sync: GroupSync) -> list[GroupRef]:
    """Every group the mapping names: each space's and its power-level groups."""
    return [ref for space in sync.all_spaces() for ref in (space.group, *space.power_groups)]


async def read(sync: GroupSync) -> Directory:
    """The whole directory, read in a thread (python-ldap blocks)."""
    in_chain = group_refs(sync) if sync.ldap.active_directory else []
    return await asyncio.to_thread(read_directory, sync.ldap, in_chain)


async def run_once(
    deployment: Deployment,
    engine: Engine,
    *,
    wait: float | None,
    on_wait: Callable[[LeaseHolder], None] | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_plan: Callable[[Plan], None] | None = None,
    on_done: Callable[[Action, bool], None] | None = None,
) -> RunReport:
    """`homeport groupsync run`: a reconcile in its turn, waiting up to `wait` seconds
    for a run in progress (the service's). A dry run needs no turn: it changes nothing."""
    if dry_run:
        return await reconcile(deployment, engine, dry_run=True, on_plan=on_plan)
    homeserver = settings_of(deployment).homeserver
    who = "`homeport groupsync run`"
    async with turn(engine, homeserver, who, wait=wait, on_wait=on_wait) as mine:
        report = await reconcile(deployment, engine, force=force, on_plan=on_plan, on_done=on_done)
    report.turn = mine
    return report


async def reconcile(
    deployment: Deployment,
    engine: Engine,
    *,
    trigger: str = "manual",
    dry_run: bool = False,
    force: bool = False,
    directory: Directory | None = None,
    only: Collection[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    on_done: Callable[[Action, bool], None] | None = None,
) -> RunReport:
    """One reconcile; the caller holds the turn unless this is a dry run."""
    sync = settings_of(deployment)
    history = GroupSyncHistory(engine, sync.homeserver)
    if directory is None:
        try:
            directory = await read(sync)
        except DirectoryUnavailable as error:
            if not dry_run:
                history.record_failed_run(trigger, "directory unavailable", str(error))
            raise GroupSyncError(f"nothing was changed: {error}") from error
    hs = deployment.homeservers[sync.homeserver]
    desired = desired_state(sync, directory, hs.server_name, hs.bot_localparts)
    try:
        return await _reconcile(
            deployment,
            sync,
            history,
            desired,
            only,
            trigger,
            dry_run,
            force,
            ssl_context,
            on_plan,
            on_done,
        )
    except httpx.HTTPError as error:
        raise GroupSyncError(
            f"homeserver {sync.homeserver!r} did not answer ({error or type(error).__name__}); "
            "is `homeport up` running? The next run goes on from what Synapse holds"
        ) from error


async def _reconcile(
    deployment: Deployment,
    sync: GroupSync,
    history: GroupSyncHistory,
    desired: DesiredState,
    only: Collection[str] | None,
    trigger: str,
    dry_run: bool,
    force: bool,
    ssl_context: ssl.SSLContext | None,
    on_plan: Callable[[Plan], None] | None,
    on_done: Callable[[Action, bool], None] | None,
) -> RunReport:
    server_name = deployment.homeservers[sync.homeserver].server_name
    aliases = list(desired.rooms) if only is None else [a for a in desired.rooms if a in only]
    async with service_client(deployment, sync.homeserver, ssl_context) as admin:
        api = SpacesApi(admin.client, server_name)
        service_user = await admin.client.whoami()
        wanted_users = {u for alias in aliases for u in desired.rooms[alias].members}
        matrix, room_ids = await read_matrix_state(api, aliases, wanted_users)
        managed = await asyncio.to_thread(history.managed)
        provisioned = await asyncio.to_thread(history.provisioned)
        rules = Rules(service_user, protected_patterns(deployment, sync), sync.max_removal_share)
        result = plan(desired, matrix, managed, rules, aliases, provisioned)
        if on_plan is not None:
            on_plan(result)
        report = RunReport(result, desired)
        if dry_run:
            report.outcome = "dry-run"
            return report
        run_id = history.start_run("forced" if force else trigger, len(result.actions))
        report.run_id = run_id
        applicable = result.applicable(force)
        held = [a for a in result.actions if a not in applicable]
        hs = deployment.homeservers[sync.homeserver]
        internal = internal_aliases(
            desired,
            server_name,
            (internal_space(ref, server_name) for ref in hs.policy.rooms.internal_spaces),
        )
        executor = Executor(api, history, run_id, room_ids, on_done, frozenset(internal))
        try:
            outcome = await executor.apply(applicable, held)
        except BaseException as error:
            history.finish_run(run_id, "failed", f"stopped: {error or type(error).__name__}")
            raise
    report.applied, report.failed, report.held = outcome.applied, outcome.failed, outcome.held
    if held:
        report.outcome = "guarded"
        report.detail = "; ".join(g.describe(sync.max_removal_share) for g in result.guards)
    elif outcome.failed:
        report.outcome = "failed"
        report.detail = f"{len(outcome.failed)} action(s) failed"
    if result.conflicts:
        conflicts = conflicts_text(result.conflicts)
        report.detail = f"{report.detail}; {conflicts}" if report.detail else conflicts
    history.finish_run(run_id, report.outcome, report.detail)
    return report


def conflicts_text(conflicts: Collection[str]) -> str:
    """What the run left alone: existing accounts the directory did not create."""
    return (
        f"{len(conflicts)} conflict(s), left alone: {', '.join(sorted(conflicts))} exist but "
        "the directory did not create them (`homeport groupsync link USER` binds one on purpose)"
    )
