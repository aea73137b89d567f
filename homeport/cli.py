"""The command line. Each command parses, calls one function, prints.

Exit codes: 0 success, 1 failure, 2 bad input (configuration or arguments).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from homeport import __version__
from homeport.admin.server import admin_server, bind_admin_socket
from homeport.config.deployment import Deployment
from homeport.config.lines import LineMap, dotted
from homeport.config.loader import load_deployment
from homeport.config.starter import starter_text
from homeport.errors import (
    AlreadyRunningError,
    ConfigError,
    HomeportError,
    NotRunningError,
    PolicyError,
)
from homeport.files import write_atomic
from homeport.layout import DeploymentLayout
from homeport.logs import log_to_file
from homeport.policy.lint import Finding, has_errors, lint
from homeport.policy.surfaces import SURFACES
from homeport.policy.verify import Report, ordered_pairs, verify
from homeport.prepare import (
    identity_changes,
    materialize,
    preflight,
    record_applied,
    unapplied,
)
from homeport.runstate import HomeserverState, RunLock, read_state, set_held, wake
from homeport.status import Status, gather_status, reset_backoff_toward
from homeport.supervisor import Supervisor
from homeport.trust import client_ssl_context
from homeport.users import check_localpart, create_user, generate_password

log = logging.getLogger("homeport")
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("homeport.yaml"),
    envvar="HOMEPORT_CONFIG",
    show_default=True,
    help="The deployment file.",
)


def reports_errors(command: F) -> F:
    """Turn domain errors into a message on stderr and their exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            err_console.print("[bold red]Configuration error[/]", highlight=False)
            for problem in error.problems:
                err_console.print(problem.render(), highlight=False, markup=False, soft_wrap=True)
            sys.exit(error.exit_code)
        except HomeportError as error:
            err_console.print(
                f"[bold red]Error:[/] {escape(str(error))}", highlight=False, soft_wrap=True
            )
            sys.exit(error.exit_code)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="homeport")
def main() -> None:
    """Run, federate and govern your organisation's own Matrix homeservers.

    \b
    Start here:
      homeport init mydeployment
      homeport up -c mydeployment/homeport.yaml
    """


@main.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default="localhost", show_default=True, help="Host of both server names.")
@click.option(
    "--port",
    "base_port",
    default=8448,
    show_default=True,
    type=click.IntRange(1, 65533),
    help="Port of internal; external gets the next one, the admin website the one after.",
)
@reports_errors
def init(directory: Path, host: str, base_port: int) -> None:
    """Write a commented starter DIRECTORY/homeport.yaml for two federating homeservers.

    Running it again keeps the existing file, keys and secrets.

    \b
    Example:
      homeport init ./deployment --port 8448
    """
    target = directory / "homeport.yaml"
    if target.exists():
        console.print(f"[yellow]Keeping[/] the existing {target}")
    else:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with target.open("x", encoding="utf-8") as handle:
                handle.write(starter_text(host, base_port, base_port + 1, base_port + 2))
        except OSError as error:
            raise HomeportError(f"cannot write {target}: {error.strerror}") from error
        console.print(f"[green]Wrote[/] {target}")
    deployment, lines = load_deployment(target)
    problems = preflight(deployment, lines, target, check_ports=False)
    if problems:
        raise ConfigError(problems)
    layout = materialize(deployment)
    console.print(f"Keys, certificates and configs are in {layout.data_dir}")
    console.print(f"Next: [bold]homeport up -c {target}[/]")


def _finding_line(finding: Finding, lines: LineMap) -> int | None:
    return lines.line_of(("homeservers", finding.homeserver, *finding.key))


def _print_findings(findings: list[Finding], lines: LineMap, config_path: Path) -> None:
    styles = {"error": "bold red", "warning": "yellow"}
    for finding in findings:
        line = _finding_line(finding, lines)
        where = f"{config_path}:{line}" if line is not None else str(config_path)
        key = dotted(("homeservers", finding.homeserver, *finding.key))
        err_console.print(
            f"[{styles[finding.severity]}]{finding.severity}[/] [bold]{finding.id}[/] "
            f"{escape(where)}: {escape(key)}\n  {escape(finding.message)}\n"
            f"  [dim]why:[/] {escape(finding.explanation)}\n  [dim]fix:[/] {escape(finding.fix)}",
            highlight=False,
            soft_wrap=True,
        )


def _lint_or_refuse(deployment: Deployment, lines: LineMap, config_path: Path) -> None:
    """Print the findings; refuse to go on (exit 2, nothing started) when one is an error."""
    findings = lint(deployment)
    if not findings:
        return
    _print_findings(findings, lines, config_path)
    if has_errors(findings):
        raise PolicyError(
            f"the policy has errors (above); fix them, then check with "
            f"`homeport lint -c {config_path}`"
        )


@main.command("lint")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@reports_errors
def lint_command(config_path: Path, as_json: bool) -> None:
    """Check the federation policy for mistakes that Synapse would accept silently.

    Exit code 1 when there is an error (`homeport up` refuses to start then),
    0 when there are only warnings or nothing to say.
    """
    deployment, lines = load_deployment(config_path)
    findings = lint(deployment)
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "findings": [
                        {
                            "id": f.id,
                            "severity": f.severity,
                            "homeserver": f.homeserver,
                            "key": dotted(("homeservers", f.homeserver, *f.key)),
                            "line": _finding_line(f, lines),
                            "message": f.message,
                            "explanation": f.explanation,
                            "fix": f.fix,
                        }
                        for f in findings
                    ],
                    "errors": errors,
                    "warnings": len(findings) - errors,
                },
                indent=2,
            )
        )
    else:
        _print_findings(findings, lines, config_path)
        summary = f"{errors} error(s), {len(findings) - errors} warning(s)"
        console.print("[green]No findings.[/]" if not findings else summary)
    if errors:
        sys.exit(1)


@main.command()
@config_option
@reports_errors
def render(config_path: Path) -> None:
    """Render every homeserver's Synapse config into the data folder, for reading.

    Secrets and keys are created once and kept; configs are rendered anew.
    """
    deployment, lines = load_deployment(config_path)
    _lint_or_refuse(deployment, lines, config_path)
    problems = preflight(deployment, lines, config_path, check_ports=False)
    if problems:
        raise ConfigError(problems)
    layout = materialize(deployment)
    table = Table("homeserver", "homeserver.yaml", "log config", title="Rendered")
    for name in deployment.homeservers:
        files = layout.homeserver(name)
        table.add_row(name, str(files.config_file), str(files.log_config_file))
    console.print(table)


class _RichReporter:
    """Draws start-up progress as a live table, then prints events as they happen."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._states: dict[str, HomeserverState] = {}
        self._started = time.monotonic()
        self.live: Live | None = None

    def table(self) -> Table:
        table = Table("homeserver", "server name", "state", "pid", title="Starting homeservers")
        styles = {"ready": "green", "failed": "red", "restarting": "yellow"}
        for name, hs in self._deployment.homeservers.items():
            entry = self._states.get(name)
            state = entry["state"] if entry else "waiting"
            spinner = "" if state in ("ready", "stopped", "failed") else " …"
            style = styles.get(state, "cyan")
            pid = str(entry["pid"]) if entry and entry["pid"] else ""
            table.add_row(name, hs.server_name, f"[{style}]{state}{spinner}[/]", pid)
        table.caption = f"{time.monotonic() - self._started:.1f} s"
        return table

    def state_changed(self, name: str, state: HomeserverState) -> None:
        self._states[name] = dict(state)  # type: ignore[assignment]
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

    def all_settled(self, held: set[str]) -> bool:
        """True once every homeserver is ready, failed, or held stopped."""

        def settled(name: str) -> bool:
            entry = self._states.get(name)
            state = entry["state"] if entry else None
            return state in ("ready", "failed") or (name in held and state == "stopped")

        return all(settled(name) for name in self._deployment.homeservers)


def _summary(deployment: Deployment, layout: DeploymentLayout, held: set[str]) -> Table:
    table = Table("homeserver", "server name", "URL", title="Homeport is up")
    for name, hs in deployment.homeservers.items():
        note = " [yellow](held stopped: homeport start)[/]" if name in held else ""
        table.add_row(name, hs.server_name + note, hs.base_url)
    if deployment.admin is not None:
        table.add_row("admin website", "(log in as a server admin)", deployment.admin.url)
    logs = layout.homeserver("NAME").log_file
    table.caption = f"CA certificate: {layout.ca_certificate}\nLogs: {logs}\nStop with Ctrl-C."
    return table


@main.command()
@config_option
@reports_errors
def up(config_path: Path) -> None:
    """Start every homeserver and keep them running, in the foreground.

    Ctrl-C or SIGTERM stops everything cleanly. A homeserver that dies is
    restarted with backoff.

    \b
    Example:
      homeport up -c deployment/homeport.yaml
    """
    deployment, lines = load_deployment(config_path)
    layout = DeploymentLayout(deployment.data_dir)
    lock = RunLock(layout)
    if layout.data_dir.exists() and (pid := lock.holder()) is not None:
        raise AlreadyRunningError(
            f"this deployment is already running (homeport up, pid {pid}); "
            f"see `homeport status -c {config_path}`"
        )
    _lint_or_refuse(deployment, lines, config_path)
    problems = preflight(deployment, lines, config_path)
    if problems:
        raise ConfigError(problems)
    materialize(deployment)
    if not lock.acquire():
        raise AlreadyRunningError("this deployment was started by another `homeport up` just now")
    log_to_file(layout.supervisor_log)
    record_applied(deployment, list(deployment.homeservers))
    try:
        asyncio.run(_run_up(deployment, layout))
    finally:
        lock.release()


async def _run_up(deployment: Deployment, layout: DeploymentLayout) -> None:
    reporter = _RichReporter(deployment)
    listening = bind_admin_socket(deployment) if deployment.admin is not None else None
    supervisor = Supervisor(deployment, layout, client_ssl_context(deployment), reporter)
    running = asyncio.create_task(supervisor.run())
    website = (
        admin_server(deployment, client_ssl_context(deployment)) if listening is not None else None
    )

    async def serve_website() -> None:
        assert website is not None
        assert listening is not None
        try:
            await website.serve(sockets=[listening])
        except BaseException:  # uvicorn exits the process on startup errors: stop cleanly
            log.exception("the admin website stopped; stopping everything")
            supervisor.request_shutdown()
            raise

    serving = asyncio.create_task(serve_website()) if website is not None else None
    try:
        await _watch_up(deployment, layout, supervisor, reporter, running)
    finally:
        if website is not None and serving is not None:
            website.should_exit = True
            with contextlib.suppress(BaseException):
                await serving


async def _watch_up(
    deployment: Deployment,
    layout: DeploymentLayout,
    supervisor: Supervisor,
    reporter: _RichReporter,
    running: asyncio.Task[None],
) -> None:
    with Live(reporter.table(), console=console, refresh_per_second=4, transient=True) as live:
        reporter.live = live
        while not running.done() and not reporter.all_settled(supervisor.held):
            await asyncio.wait({running}, timeout=0.25)
            live.update(reporter.table())
        reporter.live = None
    if not running.done():
        console.print(_summary(deployment, layout, supervisor.held))
    await running
    console.print("All homeservers stopped.")


def _running_supervisor(deployment: Deployment, config_path: Path) -> int:
    layout = DeploymentLayout(deployment.data_dir)
    pid = RunLock(layout).holder() if layout.data_dir.exists() else None
    if pid is None or pid <= 0:
        raise NotRunningError(
            f"this deployment is not running; start it with `homeport up -c {config_path}`"
        )
    return pid


def _wait_for_state(
    layout: DeploymentLayout, name: str, wanted: set[str], timeout: float
) -> str | None:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        run_state = read_state(layout)
        entry = run_state["homeservers"].get(name) if run_state else None
        state = entry["state"] if entry else None
        if state in wanted:
            return state
        time.sleep(0.2)
    return state


def _hold(layout: DeploymentLayout, pid: int, name: str) -> None:
    """Ask `up` to stop homeserver `name` and keep it stopped; return once it has."""
    set_held(layout, name, True)
    wake(pid)
    if _wait_for_state(layout, name, {"stopped"}, timeout=60) != "stopped":
        raise HomeportError(f"{name} did not stop within 60 s; see {layout.supervisor_log}")


def _release(layout: DeploymentLayout, pid: int, name: str) -> None:
    """Let `up` start homeserver `name` again (no waiting)."""
    set_held(layout, name, False)
    wake(pid)


def _wait_ready(layout: DeploymentLayout, name: str) -> None:
    state = _wait_for_state(layout, name, {"ready", "failed"}, timeout=180)
    if state != "ready":
        raise HomeportError(
            f"{name} is not ready (state: {state}); see {layout.homeserver(name).log_file}"
        )


def _name_argument(deployment: Deployment, name: str) -> None:
    if name not in deployment.homeservers:
        known = ", ".join(deployment.homeservers)
        raise click.BadParameter(f"no homeserver named {name!r}; this file has: {known}")


@main.command()
@config_option
@click.argument("name")
@reports_errors
def stop(config_path: Path, name: str) -> None:
    """Stop homeserver NAME of the running deployment; it stays stopped until `start`."""
    deployment, _ = load_deployment(config_path)
    _name_argument(deployment, name)
    pid = _running_supervisor(deployment, config_path)
    layout = DeploymentLayout(deployment.data_dir)
    _hold(layout, pid, name)
    console.print(f"{name} stopped; `homeport start -c {config_path} {name}` starts it again.")


@main.command()
@config_option
@click.argument("name")
@reports_errors
def start(config_path: Path, name: str) -> None:
    """Start homeserver NAME again after `homeport stop`, and wait until it is ready."""
    deployment, _ = load_deployment(config_path)
    _name_argument(deployment, name)
    pid = _running_supervisor(deployment, config_path)
    layout = DeploymentLayout(deployment.data_dir)
    _release(layout, pid, name)
    _wait_ready(layout, name)
    console.print(f"{name} is ready at {deployment.homeservers[name].base_url}")


@main.command("admin")
@config_option
@reports_errors
def admin_command(config_path: Path) -> None:
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
    problems = preflight(deployment, lines, config_path, check_ports=False)
    if problems:
        raise ConfigError(problems)
    materialize(deployment)
    console.print(f"Admin website on {deployment.admin.url} (Ctrl-C stops it)")
    asyncio.run(admin_server(deployment, client_ssl_context(deployment), own_signals=True).serve())


@main.command()
@config_option
@click.argument("name")
@reports_errors
def restart(config_path: Path, name: str) -> None:
    """Apply homeport.yaml to homeserver NAME: re-render its config and restart it.

    The others keep running. Policy and `synapse:` settings can change this way;
    a new server name, address, port or database needs a new `homeport up`.
    """
    deployment, lines = load_deployment(config_path)
    _name_argument(deployment, name)
    pid = _running_supervisor(deployment, config_path)
    _lint_or_refuse(deployment, lines, config_path)
    layout = DeploymentLayout(deployment.data_dir)
    run_state = read_state(layout)
    if run_state is None or name not in run_state["homeservers"]:
        raise HomeportError(
            f"{name} is not part of the running deployment; stop `homeport up` and start "
            "it again to add a homeserver"
        )
    changes = identity_changes(deployment)
    if changes:
        described = "; ".join(f"{n}: {', '.join(keys)}" for n, keys in changes.items())
        raise HomeportError(
            f"changed in the file, which a restart cannot apply ({described}); "
            f"stop `homeport up` and start it again"
        )
    try:
        _hold(layout, pid, name)
        try:
            materialize(deployment, only=name)
        except OSError as error:
            raise HomeportError(f"cannot render {name}'s config: {error}") from error
        record_applied(deployment, [name])
    finally:
        # Whatever happened, the homeserver runs again (with the old config on failure).
        _release(layout, pid, name)
    _wait_ready(layout, name)
    console.print(f"{name} restarted with the new configuration; the others kept running.")
    for other in asyncio.run(reset_backoff_toward(deployment, name)):
        console.print(f"{other} was backing off from {name}: reset, it retries now.")


def _status_table(status: Status) -> Table:
    table = Table(
        "homeserver",
        "server name",
        "running",
        "ready",
        "pid",
        "synapse",
        "destinations",
        "failing",
        title="Homeport status" + ("" if status["running"] else " (not running)"),
    )
    for name, hs in status["homeservers"].items():
        federation = hs["federation"]
        table.add_row(
            name,
            hs["server_name"],
            "[green]yes[/]"
            if hs["running"]
            else ("[yellow]held[/]" if hs["held"] else "[red]no[/]"),
            "[green]yes[/]" if hs["ready"] else "[red]no[/]",
            str(hs["pid"] or ""),
            (hs["synapse_version"] or "").split(" ")[0],
            str(federation["destinations"]) if federation else "",
            str(federation["failing"]) if federation else "",
        )
    table.caption = f"CA certificate: {status['ca_cert']}"
    if status["admin_url"]:
        table.caption += f"\nAdmin website: {status['admin_url']}"
    return table


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the documented JSON format.")
@reports_errors
def status(config_path: Path, as_json: bool) -> None:
    """Show each homeserver: running, ready, version and federation destinations.

    `--json` prints a stable format for scripts (docs/status-json.md).
    """
    deployment, _ = load_deployment(config_path)
    result = asyncio.run(gather_status(deployment))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        console.print(_status_table(result))


def _verify_table(report: Report, deployment: Deployment) -> Table:
    pairs = ordered_pairs(deployment)
    table = Table("surface", *(f"{v} → {t}" for v, t in pairs), title="Visibility: viewer → target")
    cells = {(c.viewer, c.target, c.surface): c for c in report.checks}
    for surface in SURFACES:
        row = []
        for viewer, target in pairs:
            check = cells[(viewer, target, surface.name)]
            if check.ok:
                row.append(f"[green]{escape(check.observed)}[/]")
            else:
                row.append(
                    f"[bold red]{escape(check.observed)}[/] (expected {escape(check.expected)})"
                )
        table.add_row(surface.name, *row)
    mismatches = report.mismatches
    table.caption = (
        "[green]0 mismatches: every surface is as the policy says[/]"
        if mismatches == 0
        else f"[bold red]{mismatches} mismatch(es)[/]"
    )
    return table


@main.command("verify")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print checks and mismatches as JSON.")
@reports_errors
def verify_command(config_path: Path, as_json: bool) -> None:
    """Prove the policy: what each homeserver's users really see of the others.

    For every ordered pair of homeservers it creates short-lived probe users and
    rooms, looks through the viewer's client API as a user would, compares with
    what the policy says, and removes the probes. Exit code 1 on any mismatch.
    """
    deployment, _ = load_deployment(config_path)
    if len(deployment.homeservers) < 2:
        raise HomeportError("verify needs at least two homeservers in the file")
    _running_supervisor(deployment, config_path)
    current = asyncio.run(gather_status(deployment))
    not_ready = [name for name, hs in current["homeservers"].items() if not hs["ready"]]
    if not_ready:
        raise HomeportError(
            f"not ready: {', '.join(not_ready)}; verify needs every homeserver "
            f"(`homeport start -c {config_path} NAME` starts a stopped one)"
        )
    layout = DeploymentLayout(deployment.data_dir)
    where = escape(str(config_path))
    for name in unapplied(deployment):
        err_console.print(
            f"[yellow]warning:[/] {name} runs an older configuration than {where}; verify "
            f"expects what the file says: `homeport restart -c {where} {name}` applies it",
            highlight=False,
            soft_wrap=True,
        )
    started = time.monotonic()
    if as_json:
        report = asyncio.run(verify(deployment, client_ssl_context(deployment)))
    else:
        with err_console.status("verifying") as spinner:
            report = asyncio.run(
                verify(
                    deployment,
                    client_ssl_context(deployment),
                    lambda step: spinner.update(f"verifying: {step}"),
                )
            )
    result = report.as_json()
    write_atomic(
        layout.last_verify,
        json.dumps({**result, "finished_at": time.time()}, indent=2).encode(),
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        console.print(_verify_table(report, deployment))
        for check in report.checks:
            if not check.ok:
                console.print(
                    f"[red]✗[/] {check.viewer} → {check.target} {check.surface}: "
                    f"expected {check.expected}, observed {check.observed}: "
                    f"{escape(check.detail)}",
                    soft_wrap=True,
                )
        console.print(f"[dim]{time.monotonic() - started:.1f} s[/]")
    if report.mismatches:
        sys.exit(1)


@main.group()
def user() -> None:
    """Manage users of the deployment's homeservers."""


@user.command("create")
@config_option
@click.argument("server")
@click.argument("localpart")
@click.option("--password", help="The password; one is generated and printed when left out.")
@click.option("--admin", is_flag=True, help="Make the user a server admin.")
@click.option("--json", "as_json", is_flag=True, help='Print {"user_id": ..., "password": ...}.')
@reports_errors
def user_create(
    config_path: Path,
    server: str,
    localpart: str,
    password: str | None,
    admin: bool,
    as_json: bool,
) -> None:
    """Register LOCALPART on homeserver SERVER and print the Matrix ID.

    \b
    Example:
      homeport user create internal alice --admin
    """
    deployment, _ = load_deployment(config_path)
    _name_argument(deployment, server)
    try:
        check_localpart(localpart)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="LOCALPART") from error
    generated = password is None
    secret = password if password is not None else generate_password()
    user_id = asyncio.run(create_user(deployment, server, localpart, secret, admin))
    if as_json:
        click.echo(json.dumps({"user_id": user_id, "password": secret if generated else None}))
        return
    click.echo(user_id)
    if generated:
        click.echo(f"password: {secret}")


if __name__ == "__main__":
    main()
