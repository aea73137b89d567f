"""`homeport admin`: the admin website alone (for a cluster); `up` hosts it itself."""

from __future__ import annotations

from pathlib import Path

from homeport.admin.server import serve
from homeport.capabilities import website_pages
from homeport.cli._shared import alone_command, console, to_serve_alone
from homeport.runtime.up import migrate_store


@alone_command("admin")
def admin_command(config_path: Path, prepared: bool) -> None:
    """Serve only the admin website (for Kubernetes, next to the homeservers' pods).

    The homeservers must be reachable at their URLs; `homeport up` serves the
    website itself, so this is not needed on one machine.
    """
    deployment = to_serve_alone(config_path, "admin", "docs/configuration.md#admin", prepared)
    if not prepared:
        assert deployment.admin is not None
        migrate_store(deployment)  # alone, it also brings the store's schema to date
        console.print(f"Admin website on {deployment.admin.url} (Ctrl-C stops it)")
    serve(deployment, website_pages())
