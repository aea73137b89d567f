"""`homeport groupsync`: directory groups drive space membership; run, watch, status."""

from __future__ import annotations

import asyncio
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
        "detail": report.detail,
    }


@groupsync.command("run")
@config_option
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--force", is_flag=True, help="Apply a plan guarded by max_removal_share.")
@click.option("--json", "as_json", is_flag=True, help="The outcome as JSON, for scripts.")
@reports_errors
def run(config_path: Path, dry_run: bool, force: bool, as_json: bool) -> None:
    """Reconcile once: read the directory, plan, apply, and say what was done."""
    from homeport.groupsync.run import reconcile

    deployment = _load(config_path)
    engine = open_store(deployment)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        disable=as_json,
        transient=True,
    )
    task = progress.add_task("Applying", total=None)

    def planned(plan: Any) -> None:
        progress.update(task, total=len(plan.applicable(force)))

    def done(_action: Any, _ok: bool) -> None:
        progress.advance(task)

    try:
        with progress:
            report = asyncio.run(
                reconcile(
                    deployment,
                    engine,
                    dry_run=dry_run,
                    force=force,
                    on_plan=planned,
                    on_done=done,
                )
            )
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
@click.option("--fd", "listen_fd", type=int, default=None, hidden=True)
@reports_errors
def watch(config_path: Path, listen_fd: int | None) -> None:
    """Run continuously: a full reconcile every `interval`, directory changes in seconds."""
    from homeport.groupsync.service_main import main

    deployment = _load(config_path)
    asyncio.run(main(deployment, listen_fd))


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
