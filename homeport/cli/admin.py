"""`homeport admin`: the admin website alone (for a cluster); `up` hosts it itself."""

from __future__ import annotations

from pathlib import Path

import click

from homeport.admin.server import serve
from homeport.capabilities import website_pages
from homeport.cli._shared import (
    config_option,
    console,
    prepare_alone,
    prepared_option,
    reports_errors,
)
from homeport.config.loader import load_deployment
from homeport.errors import HomeportError
from homeport.runtime.up import migrate_store


@click.command("admin")
@config_option
@prepared_option
@reports_errors
def admin_command(config_path: Path, prepared: bool) -> None:
    """Serve only the admin website (for Kubernetes, next to the homeservers' pods).

    The homeservers must be reachable at their URLs; `homeport up` serves the
    website itself, so this is not needed on one machine.
    """
    deployment, lines = load_deployment(config_path)
    if deployment.admin is None:
        raise HomeportError(
            f"{config_path} has no `admin:` section; add one with a port "
            "(see docs/configuration.md#admin)"
        )
    if not prepared:
        # Alone, it prepares what `up` would: certificates and the store's schema.
        prepare_alone(deployment, lines, config_path)
        migrate_store(deployment)
        console.print(f"Admin website on {deployment.admin.url} (Ctrl-C stops it)")
    serve(deployment, website_pages())
