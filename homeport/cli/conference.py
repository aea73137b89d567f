"""`homeport conference`: the conference verification service alone; `up` hosts it itself."""

from __future__ import annotations

from pathlib import Path

import click

from homeport.cli._shared import (
    config_option,
    console,
    prepare_alone,
    prepared_option,
    reports_errors,
)
from homeport.conference.server import serve
from homeport.config.loader import load_deployment
from homeport.errors import HomeportError


@click.command("conference")
@config_option
@prepared_option
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
        prepare_alone(deployment, lines, config_path)
        console.print(f"Conference service on {deployment.conference.url} (Ctrl-C stops it)")
    serve(deployment)
