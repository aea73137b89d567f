"""`homeport audit`: add the audit bot to rooms, list them, export what it recorded."""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
import sys
from pathlib import Path

import click
from rich.table import Table

from homeport.cli._shared import check_homeserver, config_option, console, reports_errors
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment
from homeport.errors import HomeportError
from homeport.store.database import open_store


@click.group()
def audit() -> None:
    """The audit bot: record chosen rooms created on a homeserver, and export them."""


def _load(config_path: Path, server: str) -> Deployment:
    from homeport.audit.manage import require_bot

    deployment, _ = load_deployment(config_path)
    check_homeserver(deployment, server)
    require_bot(deployment, server)
    return deployment


def _by() -> str:
    """Who ran the command, as the room's members will read it."""
    return f"{getpass.getuser()} (homeport audit)"


def _change(config_path: Path, server: str, room: str, add: bool) -> None:
    from homeport.audit.manage import change

    deployment = _load(config_path, server)
    engine = open_store(deployment)
    try:
        done = asyncio.run(change(deployment, server, room, _by(), engine, add))
    finally:
        engine.dispose()
    if done.already:
        state = "already records" if add else "was not recording"
        message = f"The audit bot {state} {done.room_id}."
    elif add:
        message = f"The audit bot now records {done.room_id}."
        if done.inviter:
            message += f"\n  (invited in the name of {done.inviter}, the member with most power)"
    else:
        message = f"The audit bot stopped recording {done.room_id}."
    console.print(message, highlight=False, soft_wrap=True)
    if not done.confirmed:
        raise HomeportError(
            f"Synapse made the change, but the audit bot has not recorded it yet; is "
            f"`homeport up -c {config_path}` running? (`homeport status` shows the bot)"
        )


@audit.command("add")
@config_option
@click.argument("server")
@click.argument("room")
@reports_errors
def add(config_path: Path, server: str, room: str) -> None:
    """Record ROOM (an ID or #alias) with SERVER's audit bot.

    Only rooms created on SERVER can be recorded; any other is refused, and
    nothing changes. Members see the bot join as "Audit bot (recording)".

    \b
    Example:
      homeport audit add internal '#board:internal.example.org'
    """
    _change(config_path, server, room, add=True)


@audit.command("remove")
@config_option
@click.argument("server")
@click.argument("room")
@reports_errors
def remove(config_path: Path, server: str, room: str) -> None:
    """Stop recording ROOM: SERVER's audit bot leaves it (what it recorded stays)."""
    _change(config_path, server, room, add=False)


@audit.command("list")
@config_option
@click.argument("server")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@reports_errors
def list_rooms(config_path: Path, server: str, as_json: bool) -> None:
    """The rooms SERVER's audit bot records: since when, added by whom, events recorded."""
    from homeport.audit import store
    from homeport.clock import iso

    deployment = _load(config_path, server)
    engine = open_store(deployment)
    try:
        rooms = store.audited_rooms(engine, server)
    finally:
        engine.dispose()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "room_id": r.room_id,
                        "since_ms": r.since_ts,
                        "added_by": r.added_by,
                        "events": r.events,
                    }
                    for r in rooms
                ],
                indent=2,
            )
        )
        return
    table = Table("Room", "Recording since", "Added by", "Events", title=f"Audited on {server}")
    for r in rooms:
        table.add_row(r.room_id, iso(r.since_ts), r.added_by, str(r.events))
    console.print(table)


@audit.command("export")
@config_option
@click.argument("server")
@click.option("--room", help="Only this room (an ID).")
@click.option("--sender", help="Only events sent by this user ID.")
@click.option("--since", help="From this time on (ISO 8601, UTC unless it says).")
@click.option("--until", help="Before this time.")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@reports_errors
def export(
    config_path: Path,
    server: str,
    room: str | None,
    sender: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
) -> None:
    """Write what SERVER's audit bot recorded to standard output, in recording order.

    Encrypted events carry their plaintext once the bot had the keys.
    """
    from homeport.audit import store
    from homeport.audit.export import parse_time, write_csv, write_jsonl

    deployment = _load(config_path, server)
    try:
        filters = store.Filters(
            room_id=room,
            sender=sender,
            since_ms=parse_time(since) if since else None,
            until_ms=parse_time(until) if until else None,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    engine = open_store(deployment)
    try:
        events = store.stream(engine, server, filters)
        (write_csv if fmt == "csv" else write_jsonl)(events, sys.stdout)
    finally:
        engine.dispose()


@audit.command("run", hidden=True)
@config_option
@click.argument("server")
@reports_errors
def run(config_path: Path, server: str) -> None:
    """Run SERVER's audit bot alone (in a pod; `homeport up` hosts it itself)."""
    from homeport.audit.bot import main
    from homeport.supervision.serving import run_alone

    deployment = _load(config_path, server)
    run_alone(functools.partial(main, deployment, server))
