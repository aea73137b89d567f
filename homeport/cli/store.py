"""`homeport store migrate`: bring Homeport's own database up to date."""

from __future__ import annotations

from pathlib import Path

import click

from homeport.cli._shared import config_option, console, reports_errors
from homeport.config.loader import load_deployment
from homeport.store.database import create_store_engine, store_url, where
from homeport.store.migrate import migrate


@click.group()
def store() -> None:
    """Homeport's own database (SQLite in the data folder, or PostgreSQL)."""


@store.command("migrate")
@config_option
@reports_errors
def store_migrate(config_path: Path) -> None:
    """Apply the schema migrations the store lacks; `homeport up` does this itself.

    Run it before `homeport admin` in a cluster, or after an upgrade of Homeport.

    \b
    Example:
      homeport store migrate -c deployment/homeport.yaml
    """
    deployment, _ = load_deployment(config_path)
    engine = create_store_engine(store_url(deployment))
    try:
        migration = migrate(engine)
        shown = where(engine)
    finally:
        engine.dispose()
    if migration.changed:
        console.print(
            f"Store at {shown}: schema {migration.before or 'none'} → {migration.after}",
            highlight=False,
        )
    else:
        console.print(f"Store at {shown}: schema {migration.after}, up to date", highlight=False)
