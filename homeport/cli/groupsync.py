"""`homeport groupsync`: directory groups drive space membership; run, watch, status."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from homeport.cli._shared import config_option, console, err_console, reports_errors
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment
from homeport.errors import HomeportError
from homeport.store.database import open_store


class GuardedRun(HomeportError):
    """The run removed nobody: it would have removed too many (exit 1 with the reason)."""


@click.group()
def groupsync() -> None:
    """Group sync: LDAP / Active Directory groups drive space membership."""


def _load(config_path: Path) -> Deployment:
    from homeport.groupsync.run import settings_of

    deployment, _ = load_deployment(config_path)
    settings_of(deployment)
    return deployment


def _plan_table(report: Any) -> Table:
    table = Table("action", "who", "where", "value", "why", title="Plan")
    for action in report.plan.actions:
        value = "" if action.value is None else str(action.value)
        if action.kind == "set_power" and action.value is None:
            value = "default"
        table.add_row(
            action.kind.replace("_", " "),
            escape(action.user or ""),
            escape(f"#{action.room}" if action.room else ""),
            escape(value),
            escape(action.why),
        )
    return table


def _summary(report: Any) -> Table:
    table = Table("kind", "planned", title="Summary")
    kinds: dict[str, int] = {}
    for action in report.plan.actions:
        kinds[action.kind] = kinds.get(action.kind, 0) + 1
    for kind, count in kinds.items():
        table.add_row(kind.replace("_", " "), str(count))
    return table


def _as_json(report: Any) -> dict[str, Any]:
    return {
        "outcome": report.outcome,
        "run_id": report.run_id,
        "applied": report.applied,
        "held": report.held,
        "failed": [{"action": a.describe(), "error": e} for a, e in report.failed],
        "actions": [
            {"kind": a.kind, "room": a.room, "user": a.user, "value": a.value, "why": a.why}
            for a in report.plan.actions
        ],
        "guarded": [g.room for g in report.plan.guards],
        "notes": list(report.plan.notes),
        "conflicts": list(report.plan.conflicts),
        "detail": report.detail,
        "waited_seconds": round(report.turn.waited, 1),
        "waited_for": report.turn.waited_for.holder if report.turn.waited_for else None,
    }


def _busy_json(busy: Any) -> dict[str, Any]:
    return {
        "outcome": "in progress",
        "detail": str(busy),
        "waited_seconds": round(busy.waited, 1),
        "waited_for": busy.holder.holder,
    }


class _Display:
    """On stderr: a status while the run waits its turn, then progress while it applies."""

    def __init__(self, quiet: bool) -> None:
        self._status = None if quiet else err_console.status("")
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err_console,
            disable=quiet,
            transient=True,
        )
        self._task = self._progress.add_task("Applying", total=None)

    def waiting(self, holder: Any) -> None:
        if self._status is None:
            return
        from homeport.groupsync.turns import clock

        self._status.update(
            f"Waiting for the group sync run in progress ({escape(holder.holder)}, since "
            f"{clock(holder.acquired_ts)})"
        )
        self._status.start()

    def planned(self, total: int) -> None:
        if self._status is not None:
            self._status.stop()
        self._progress.update(self._task, total=total)
        self._progress.start()

    def done(self) -> None:
        self._progress.advance(self._task)

    def __enter__(self) -> _Display:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._status is not None:
            self._status.stop()
        self._progress.stop()


@groupsync.command("run")
@config_option
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--force", is_flag=True, help="Apply a plan guarded by max_removal_share.")
@click.option(
    "--wait",
    "wait",
    type=click.FloatRange(min=0),
    default=60,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for a run in progress (the service's) before giving up (exit 75).",
)
@click.option("--json", "as_json", is_flag=True, help="The outcome as JSON, for scripts.")
@reports_errors
def run(config_path: Path, dry_run: bool, force: bool, wait: float, as_json: bool) -> None:
    """Reconcile once: read the directory, plan, apply, and say what was done.

    One run at a time per homeserver: while another runs (the service `up`
    runs, another command), this one waits for it, up to --wait seconds.
    """
    from homeport.groupsync.run import run_once
    from homeport.groupsync.turns import RunInProgress

    deployment = _load(config_path)
    engine = open_store(deployment)
    display = _Display(as_json)
    try:
        with display:
            report = asyncio.run(
                run_once(
                    deployment,
                    engine,
                    wait=wait,
                    on_wait=display.waiting,
                    dry_run=dry_run,
                    force=force,
                    on_plan=lambda plan: display.planned(len(plan.applicable(force))),
                    on_done=lambda _action, _ok: display.done(),
                )
            )
    except RunInProgress as busy:
        if as_json:
            console.print_json(json.dumps(_busy_json(busy)))
        raise
    finally:
        engine.dispose()
    if as_json:
        console.print_json(json.dumps(_as_json(report)))
    else:
        _print_report(report, dry_run)
    if report.outcome == "guarded":
        raise GuardedRun(
            f"removed nobody: {report.detail}; check the directory, then run again with "
            "--force to apply the removals"
        )
    if report.outcome == "failed":
        raise HomeportError(
            f"{report.detail}; `homeport groupsync status` lists the errors; the next run "
            "tries them again"
        )


def _print_report(report: Any, dry_run: bool) -> None:
    if report.turn.waited_for is not None:
        console.print(
            f"Waited {report.turn.waited:.0f} s for the group sync run in progress "
            f"({escape(report.turn.waited_for.holder)}) to finish.",
            highlight=False,
            soft_wrap=True,
        )
    if report.plan.actions:
        console.print(_plan_table(report) if dry_run else _summary(report))
    for note in report.plan.notes:
        console.print(f"[yellow]note[/] {escape(note)}", highlight=False, soft_wrap=True)
    for action, error in report.failed:
        console.print(
            f"[red]failed[/] {escape(action.describe())}: {escape(error)}",
            highlight=False,
            soft_wrap=True,
        )
    if dry_run:
        verb = "would be applied" if report.plan.actions else "nothing to do"
        console.print(f"Dry run: {len(report.plan.actions)} action(s) {verb}.", highlight=False)
    elif not report.plan.actions:
        console.print("In sync: nothing to do.")
    else:
        console.print(
            f"Applied {report.applied}, failed {len(report.failed)}, held {report.held} "
            f"(run {report.run_id}).",
            highlight=False,
        )


@groupsync.command("watch")
@config_option
@reports_errors
def watch(config_path: Path) -> None:
    """Run continuously: a full reconcile every `interval`, directory changes in seconds."""
    from homeport.groupsync.service_main import main
    from homeport.supervision.serving import run_alone

    deployment = _load(config_path)
    run_alone(functools.partial(main, deployment))


@groupsync.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="As JSON, for scripts.")
@reports_errors
def status(config_path: Path, as_json: bool) -> None:
    """Mappings, the last and next run, recent changes and errors."""
    from homeport.groupsync.overview import overview

    deployment = _load(config_path)
    engine = open_store(deployment)
    try:
        view = asyncio.run(overview(deployment, engine))
    finally:
        engine.dispose()
    if as_json:
        console.print_json(json.dumps(view.as_json()))
        return
    mappings = Table("space", "group", "parent", "rooms", "power levels", title="Mappings")
    for row in view.mappings:
        mappings.add_row(
            escape(f"#{row.alias}"),
            escape(row.group),
            escape(f"#{row.parent}" if row.parent else ""),
            escape(", ".join(f"#{r}" for r in row.rooms)),
            escape(", ".join(f"{g}: {lvl}" for g, lvl in row.power_levels.items())),
        )
    console.print(mappings)
    console.print(
        f"Last run: {escape(view.last_run_text())}   Next full reconcile: "
        f"{escape(view.next_run_text())}",
        highlight=False,
        soft_wrap=True,
    )
    changes = Table("when", "action", "who", "where", "why", "result", title="Recent changes")
    for action in view.recent:
        changes.add_row(
            view.when(action.ts),
            action.kind.replace("_", " "),
            escape(action.user_id or ""),
            escape(f"#{action.room}" if action.room else ""),
            escape(action.why),
            escape(action.result + (f": {action.error}" if action.error else "")),
        )
    console.print(changes)


@groupsync.command("link")
@config_option
@click.argument("user")
@reports_errors
def link_command(config_path: Path, user: str) -> None:
    """Bind an existing account to the directory person of the same name, on purpose.

    Group sync and directory login act only on accounts the directory created;
    an account made another way is a conflict until linked. Example:
    `homeport groupsync link @alice:example.org`.
    """
    from homeport.groupsync.link import link

    linked = asyncio.run(link(_load(config_path), user))
    what = "was already linked to" if linked.already else "is now linked to"
    console.print(
        f"{escape(linked.user_id)} {what} {escape(linked.person)}: group sync manages it and "
        "the person logs in to it with their directory password",
        highlight=False,
    )
