"""`homeport init` and `homeport render`: a starter file, and what it renders to."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from homeport.cli._shared import config_option, console, lint_or_refuse, reports_errors
from homeport.config.loader import load_deployment
from homeport.config.starter import MODELS, write_starter
from homeport.errors import ConfigError
from homeport.files import ensure_dir, write_atomic
from homeport.runtime.prepare import materialize, preflight
from homeport.targets.interface import RenderContext, RenderedFile
from homeport.targets.kubernetes_inputs import (
    synapse_version as synapse_version,  # `homeport backup` records it (cli/backup.py)
)
from homeport.targets.registry import TARGETS


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default="localhost", show_default=True, help="Host of the server names.")
@click.option(
    "--port",
    "base_port",
    default=8448,
    show_default=True,
    type=click.IntRange(1, 65530),
    help="Port of the first homeserver; the other services get the next ones (two "
    "homeservers: external, the admin website, two audit bots, the conference service; "
    "single: the admin website, the audit bot).",
)
@click.option(
    "--model",
    type=click.Choice(MODELS),
    default="two",
    show_default=True,
    help="two: an internal and an external homeserver, federating with each other; "
    "single: one federating homeserver whose internal spaces never federate.",
)
@reports_errors
def init(directory: Path, host: str, base_port: int, model: str) -> None:
    """Write a commented starter DIRECTORY/homeport.yaml: two federating homeservers, or
    one with internal spaces (--model single).

    Running it again keeps the existing file, keys and secrets.

    \b
    Example:
      homeport init ./deployment --port 8448
      homeport init ./one --model single
    """
    target = directory / "homeport.yaml"
    if write_starter(target, host, base_port, model):
        console.print(f"[green]Wrote[/] {target}")
    else:
        console.print(f"[yellow]Keeping[/] the existing {target}")
    deployment, lines = load_deployment(target)
    problems = preflight(deployment, lines, target, check_ports=False)
    if problems:
        raise ConfigError(problems)
    layout = materialize(deployment)
    console.print(f"Keys, certificates and configs are in {layout.data_dir}")
    console.print(f"Next: [bold]homeport up -c {target}[/]")


@click.command()
@config_option
@click.option(
    "--target",
    type=click.Choice(list(TARGETS)),
    default="synapse",
    show_default=True,
    help="; ".join(f"{t.name}: {t.description}" for t in TARGETS.values()) + ".",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the files of a --target other than synapse go.",
)
@reports_errors
def render(config_path: Path, target: str, out_dir: Path | None) -> None:
    """Render every homeserver's Synapse config into the data folder, for reading.

    Secrets and keys are created once and kept; configs are rendered anew.
    With --target systemd, writes `homeport.service` (one hardened unit that
    runs `homeport up`) and its sysusers and tmpfiles entries into --out; with
    --target nginx, the proxy's `homeport.conf` and what it needs.
    """
    deployment, lines = load_deployment(config_path)
    lint_or_refuse(deployment, lines, config_path)
    problems = preflight(deployment, lines, config_path, check_ports=False)
    if problems:
        raise ConfigError(problems)
    context = RenderContext(
        config_path=config_path,
        lines=lines,
        out_dir=out_dir,
        prepare=materialize,
        python=Path(sys.executable),
    )
    rendered = TARGETS[target].render(deployment, context)
    if rendered.out_dir is not None:
        write_files(rendered.out_dir, rendered.files)
    summary = rendered.summary
    table = Table(*summary.columns, title=summary.title)
    for row in summary.rows:
        table.add_row(*row)
    console.print(table)


def write_files(out_dir: Path, files: dict[str, RenderedFile]) -> None:
    """Into `out_dir` (sub-folders made), each file with its mode."""
    ensure_dir(out_dir)
    for name, file in files.items():
        path = out_dir / name
        ensure_dir(path.parent)
        write_atomic(path, file.text.encode(), file.mode)
