"""`homeport backup` and `homeport restore`: what matters, in one archive, and back."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
from rich.table import Table

from homeport.backup.archive import create_backup, read_manifest, restore_backup
from homeport.backup.contents import archive_name, to_prune
from homeport.cli._shared import config_option, console, err_console, reports_errors
from homeport.cli.setup import synapse_version
from homeport.config.loader import load_deployment


def _step(text: str) -> None:
    err_console.print(f"[cyan]…[/] {text}", highlight=False)


@click.command()
@config_option
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The archive to write (a new file: .tar.gz, mode 0600); left out: a new "
    "homeport-<UTC time>.tar.gz in backup.directory, keeping the newest backup.keep.",
)
@click.option(
    "--without-media",
    is_flag=True,
    help="Leave the homeservers' media out (back them up with your file backups); "
    "backup.media: false does the same.",
)
@click.option("--json", "as_json", is_flag=True, help="The manifest as JSON on stdout.")
@reports_errors
def backup(config_path: Path, out: Path | None, without_media: bool, as_json: bool) -> None:
    """Back up the deployment while it runs: keys, databases, Homeport's store, media.

    Signing keys, the local CA, certificates and secrets; every homeserver's
    database (SQLite copied with SQLite's online backup, PostgreSQL with
    pg_dump); Homeport's store; the audit bots' encryption keys; media.
    Logs and rendered files are left out. The archive holds every secret:
    keep it as you keep the keys.

    \b
    Example:
      homeport backup -c deployment/homeport.yaml
      homeport backup -c deployment/homeport.yaml --out /mnt/offsite/before-upgrade.tar.gz
    """
    deployment, _ = load_deployment(config_path)
    settings = deployment.backup
    scheduled = out is None
    if out is None:
        out = settings.directory / archive_name(time.gmtime())
    with_media = settings.media and not without_media
    result = create_backup(deployment, config_path, out, synapse_version(), with_media, _step)
    if scheduled:
        for name in to_prune(os.listdir(settings.directory), settings.keep):
            (settings.directory / name).unlink()
            _step(f"removed {name} (backup.keep: {settings.keep})")
    manifest = result.manifest
    if as_json:
        click.echo(json.dumps(manifest.to_json(), indent=2))
        return
    table = Table("what", "files", "bytes", title=f"Backup {result.path}")
    groups: dict[str, tuple[int, int]] = {}
    for name, member in manifest.files.items():
        parts = name.split("/")
        group = "/".join(parts[:3]) if parts[0] == "data" and len(parts) > 3 else parts[0]
        count, size = groups.get(group, (0, 0))
        groups[group] = (count + 1, size + member.size)
    for group, (count, size) in sorted(groups.items()):
        table.add_row(group, str(count), f"{size:,}")
    table.caption = f"{result.size:,} bytes compressed; mode 0600: it holds every key"
    console.print(table)
    for path in manifest.left_out:
        console.print(
            f"[yellow]Not in the backup:[/] {path} (outside the deployment's folder; "
            "back it up with the machine)",
            highlight=False,
        )


@click.command()
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--to",
    "target",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The deployment folder to restore into (absent or empty).",
)
@click.option(
    "--config",
    "config_override",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Restore under this homeport.yaml instead of the backup's (new database URLs, "
    "ports); the server names must be the backup's.",
)
@click.option(
    "--list", "only_list", is_flag=True, help="Show what the backup holds; restore nothing."
)
@reports_errors
def restore(
    archive: Path, target: Path | None, config_override: Path | None, only_list: bool
) -> None:
    """Restore a backup into a new deployment folder, checked before anything is written.

    The archive's sums, the server names (a signing key belongs to its server
    name), the database engines and every target (empty folders, empty
    PostgreSQL databases) are checked first; the folders are built aside and
    moved into place at the end; each PostgreSQL dump loads in one
    transaction. Then start it with `homeport up`.

    \b
    Example:
      homeport restore /backup/homeport-2026-12-01.tar.gz --to /srv/homeport
    """
    if only_list:
        manifest = read_manifest(archive)
        table = Table("homeserver", "server name", "database", title=f"{archive}")
        for name, server_name in manifest.server_names.items():
            table.add_row(name, server_name, manifest.engines[name])
        table.caption = (
            f"made {manifest.created} by Homeport {manifest.homeport_version}, "
            f"Synapse {manifest.synapse_version}; {len(manifest.files)} files; "
            f"media {'in' if manifest.with_media else 'left out'}"
        )
        console.print(table)
        return
    if target is None:
        raise click.UsageError("name the folder to restore into with --to DIR")
    result = restore_backup(archive, target, config_override, _step)
    console.print(
        f"Restored {len(result.manifest.files)} files into {result.config_path.parent} "
        f"(data: {result.data_dir})"
        + (f"; PostgreSQL: {', '.join(result.databases)}" if result.databases else ""),
        highlight=False,
    )
    if result.manifest.synapse_version != synapse_version():
        console.print(
            f"[yellow]The backup was made with Synapse {result.manifest.synapse_version}; this "
            f"is {synapse_version()}:[/] Synapse migrates a database forward when it starts, "
            "never back",
            highlight=False,
        )
    for path in result.manifest.left_out:
        console.print(f"[yellow]Put back by hand:[/] {path}", highlight=False)
    console.print(f"Next: [bold]homeport up -c {result.config_path}[/]")
