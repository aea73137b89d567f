"""`homeport alerts`: federation incidents, now and lately; the alerts service alone."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from homeport.cli._shared import config_option, console, reports_errors, to_serve_alone
from homeport.config.loader import load_deployment

DAY_MS = 86_400_000


@click.group("alerts")
def alerts() -> None:
    """Federation incidents: which servers stopped receiving events or answering."""


@alerts.command("list")
@config_option
@click.option("--days", default=7, show_default=True, help="Incidents of the last DAYS days.")
@click.option("--json", "as_json", is_flag=True, help="As JSON, for scripts.")
@reports_errors
def list_incidents(config_path: Path, days: int, as_json: bool) -> None:
    """Open incidents and those of the last days, newest first, per homeserver."""
    from homeport.alerts.store import recent_incidents
    from homeport.clock import iso
    from homeport.store.database import open_store

    deployment, _ = load_deployment(config_path)
    since = int(time.time() * 1000) - days * DAY_MS
    engine = open_store(deployment)
    try:
        found = recent_incidents(engine, list(deployment.homeservers), since)
    finally:
        engine.dispose()
    if as_json:
        rows = [
            {
                "id": i.id,
                "homeserver": i.homeserver,
                "destination": i.destination,
                "kind": i.kind,
                "started_at": iso(i.started_ms),
                "ended_at": iso(i.ended_ms) if i.ended_ms is not None else None,
                "rooms": i.rooms,
                "events": i.events,
                "told": i.alerted,
                "detail": i.detail,
            }
            for i in found
        ]
        click.echo(json.dumps({"incidents": rows}, indent=2))
        return
    if not found:
        console.print(f"No federation incident in the last {days} days.")
        return
    table = Table("Homeserver", "Destination", "What", "Started", "Ended", "Waited", "Told")
    for i in found:
        table.add_row(
            i.homeserver,
            escape(i.destination),
            i.kind.replace("_", " "),
            iso(i.started_ms)[:19].replace("T", " "),
            "[red]ongoing[/]" if i.ended_ms is None else iso(i.ended_ms)[:19].replace("T", " "),
            f"{i.events} events, {i.rooms} rooms" if i.kind == "not_delivering" else "",
            "yes" if i.alerted else "no",
        )
    console.print(table)


@alerts.command("watch")
@config_option
@click.option("--prepared", is_flag=True, help="Keys and certificates are in place already.")
@reports_errors
def watch(config_path: Path, prepared: bool) -> None:
    """Serve only the alerts service (as `up` does when `alerts:` is configured)."""
    from homeport.alerts.service import main
    from homeport.supervision.serving import run_alone

    deployment = to_serve_alone(config_path, "alerts", "docs/alerts.md", prepared)
    run_alone(functools.partial(main, deployment))
