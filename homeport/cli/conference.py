"""`homeport conference`: the conference verification service alone, or as `up`'s child."""

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
    "--fd",
    "listen_fd",
    type=int,
    default=None,
    hidden=True,
    help="Serve on this already listening socket (how `homeport up` starts the service).",
)
@click.option(
    "--prepared",
    is_flag=True,
    help="The data folder is complete (a cluster's Secret, rendered by `homeport render "
    "--target kubernetes`): create no key or certificate, migrate nothing.",
)
@reports_errors
def conference_command(config_path: Path, listen_fd: int | None, prepared: bool) -> None:
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
    if listen_fd is None and not prepared:
        # Alone, it prepares what `up` would: its certificate and secrets.
        problems = preflight(deployment, lines, config_path, check_ports=False)
        if problems:
            raise ConfigError(problems)
        materialize(deployment)
        console.print(f"Conference service on {deployment.conference.url} (Ctrl-C stops it)")
    serve(deployment, listen_fd)
