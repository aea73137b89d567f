"""`homeport conference`: the conference verification service alone; `up` hosts it itself."""

from __future__ import annotations

from pathlib import Path

import click

from homeport.cli._shared import config_option, console, reports_errors
from homeport.conference.server import serve
from homeport.config.loader import load_deployment
from homeport.errors import ConfigError, HomeportError
from homeport.runtime.prepare import materialize, preflight


@click.command("conference")
@config_option
@click.option(
    "--prepared",
    is_flag=True,
    help="The data folder is complete (a cluster's Secret, rendered by `homeport render "
    "--target kubernetes`): create no key or certificate, migrate nothing.",
)
@reports_errors
def conference_command(config_path: Path, prepared: bool) -> None:
    """Serve only the conference verification service (Jitsi, Element Call).

    The homeservers must be reachable at their URLs; `homeport up` runs the
    service itself when `conference:` is configured.
    """
    deployment, lines = load_deployment(config_path)
    if deployment.conference is None:
        raise HomeportError(
            f"{config_path} has no `conference:` section; add one with a port "
            "(see docs/conference.md)"
        )
    if not prepared:
        # Alone, it prepares what `up` would: its certificate and secrets.
        problems = preflight(deployment, lines, config_path, check_ports=False)
        if problems:
            raise ConfigError(problems)
        materialize(deployment)
        console.print(f"Conference service on {deployment.conference.url} (Ctrl-C stops it)")
    serve(deployment)
