"""`homeport conference`: the conference verification service alone; `up` hosts it itself."""

from __future__ import annotations

from pathlib import Path

from homeport.cli._shared import alone_command, console, to_serve_alone
from homeport.conference.server import serve


@alone_command("conference")
def conference_command(config_path: Path, prepared: bool) -> None:
    """Serve only the conference verification service (Jitsi, Element Call).

    The homeservers must be reachable at their URLs; `homeport up` runs the
    service itself when `conference:` is configured.
    """
    deployment = to_serve_alone(config_path, "conference", "docs/conference.md", prepared)
    if not prepared:
        assert deployment.conference is not None
        console.print(f"Conference service on {deployment.conference.url} (Ctrl-C stops it)")
    serve(deployment)
