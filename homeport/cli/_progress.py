"""How `homeport up` looks while it runs: a live table until every service settles."""

from __future__ import annotations

import asyncio
import time

from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from homeport.cli._shared import console
from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.supervision.state import ServiceState
from homeport.supervision.supervisor import Supervisor

SETTLED = ("ready", "stopped", "failed")


class RichReporter:
    """Draws start-up progress as a live table, then prints events as they happen."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._states: dict[str, ServiceState] = {}
        self._started = time.monotonic()
        self.live: Live | None = None

    def table(self) -> Table:
        table = Table("service", "what", "state", "pid", title="Starting homeservers")
        styles = {"ready": "green", "failed": "red", "restarting": "yellow"}
        for name, entry in self._states.items():
            state = entry["state"]
            spinner = "" if state in SETTLED else " …"
            style = styles.get(state, "cyan")
            hs = self._deployment.homeservers.get(name)
            what = hs.server_name if hs else entry["kind"]
            pid = str(entry["pid"]) if entry["pid"] else ""
            table.add_row(name, what, f"[{style}]{state}{spinner}[/]", pid)
        table.caption = f"{time.monotonic() - self._started:.1f} s"
        return table

    def state_changed(self, name: str, state: ServiceState) -> None:
        self._states[name] = ServiceState(**state)
        if self.live is not None:
            self.live.update(self.table())
        elif state["state"] in ("ready", "stopped", "starting"):
            console.print(f"{time.strftime('%H:%M:%S')} {name}: {state['state']}")

    def died(self, name: str, exit_code: int, log_tail: str, restart_in: float) -> None:
        console.print(
            Panel(
                log_tail,
                title=f"{name} exited with code {exit_code}; restarting in {restart_in:g} s",
                border_style="red",
            ),
            markup=False,
        )

    def all_settled(self, supervisor: Supervisor) -> bool:
        """True once every service is ready, failed, or held stopped."""
        held = supervisor.held
        return all(
            entry["state"] in ("ready", "failed") or (name in held and entry["state"] == "stopped")
            for name, entry in supervisor.states.items()
        )


def summary(deployment: Deployment, layout: DeploymentLayout, held: set[str]) -> Table:
    table = Table("homeserver", "server name", "URL", title="Homeport is up")
    for name, hs in deployment.homeservers.items():
        note = " [yellow](held stopped: homeport start)[/]" if name in held else ""
        table.add_row(name, hs.server_name + note, hs.base_url)
    if deployment.admin is not None:
        table.add_row("admin website", "(log in as a server admin)", deployment.admin.url)
    logs = layout.homeserver("NAME").log_file
    table.caption = f"CA certificate: {layout.ca_certificate}\nLogs: {logs}\nStop with Ctrl-C."
    return table


async def watch(
    reporter: RichReporter,
    deployment: Deployment,
    layout: DeploymentLayout,
    supervisor: Supervisor,
    running: asyncio.Task[None],
) -> None:
    """The live table until everything settles, the summary, then wait for the end."""
    with Live(reporter.table(), console=console, refresh_per_second=4, transient=True) as live:
        reporter.live = live
        while not running.done() and not reporter.all_settled(supervisor):
            await asyncio.wait({running}, timeout=0.25)
            live.update(reporter.table())
        reporter.live = None
    if not running.done():
        console.print(summary(deployment, layout, supervisor.held))
    await running
    console.print("All homeservers stopped.")
