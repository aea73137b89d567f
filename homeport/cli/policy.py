"""The visibility policy: `lint` reads the file, `verify` probes the running servers."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
import httpx
from rich.markup import escape
from rich.table import Table

from homeport.cli._shared import (
    config_option,
    console,
    err_console,
    finding_line,
    print_findings,
    reports_errors,
)
from homeport.config.deployment import Deployment
from homeport.config.lines import LineMap, dotted
from homeport.config.loader import load_deployment
from homeport.errors import HomeportError
from homeport.layout import DeploymentLayout
from homeport.policy.lint import Finding, lint
from homeport.policy.surfaces import SURFACES, ordered_pairs
from homeport.runtime.applied import unapplied
from homeport.runtime.control import Control
from homeport.runtime.status import gather_status
from homeport.store.database import open_store
from homeport.supervision.state import RunLock
from homeport.synapse.api import SynapseApiError
from homeport.trust import client_ssl_context
from homeport.verify.internal_spaces import internal_space_drift
from homeport.verify.mixed_rooms import mixed_room_drift
from homeport.verify.report import Report, save_report
from homeport.verify.run import verify


@click.command("lint")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@reports_errors
def lint_command(config_path: Path, as_json: bool) -> None:
    """Check the federation policy for mistakes that Synapse would accept silently.

    With the deployment running, it also reports the rooms of internal spaces
    that federate, hold other servers' users or are open to them (drift).
    Exit code 1 when there is an error (`homeport up` refuses to start then),
    0 when there are only warnings or nothing to say.
    """
    deployment, lines = load_deployment(config_path)
    drift, unchecked = _drift(deployment)
    findings = lint(deployment) + drift
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        rows = _findings_json(findings, lines)
        summary = {
            "findings": rows,
            "errors": errors,
            "warnings": len(findings) - errors,
            "internal_spaces_unchecked": unchecked,
        }
        click.echo(json.dumps(summary, indent=2))
    else:
        print_findings(findings, lines, config_path)
        if unchecked:
            err_console.print(f"[yellow]note:[/] {escape(unchecked)}", soft_wrap=True)
        summary_text = f"{errors} error(s), {len(findings) - errors} warning(s)"
        console.print("[green]No findings.[/]" if not findings else summary_text)
    if errors:
        sys.exit(1)


DRIFT_TIMEOUT_S = 20.0  # a homeserver that hangs: lint and verify say so, and go on or stop


def _running(deployment: Deployment) -> bool:
    """Whether `homeport up` runs this deployment (its lock is held)."""
    layout = DeploymentLayout(deployment.data_dir)
    return layout.data_dir.exists() and (RunLock(layout).holder() or 0) > 0


def _drift(deployment: Deployment) -> tuple[list[Finding], str | None]:
    """What the running homeservers hold against the policy: the internal spaces' rooms
    that federate or hold others (drift), and the rooms that mix servers a closed homeserver
    shuts out; or why it was not looked at. Rooms that mix servers are looked at only
    while the deployment runs (lint before `up` has nothing to say of them)."""
    internal = any(hs.policy.rooms.internal_spaces for hs in deployment.homeservers.values())
    closed = _running(deployment) and any(
        hs.policy.federation_domain_whitelist is not None for hs in deployment.homeservers.values()
    )
    if not internal and not closed:
        return [], None
    context = client_ssl_context(deployment)

    async def both() -> list[Finding]:
        async def spaces() -> list[Finding]:
            found = await internal_space_drift(deployment, context) if internal else {}
            return [f for findings in found.values() for f in findings]

        async def mixed() -> list[Finding]:
            return await mixed_room_drift(deployment, context) if closed else []

        drifted, mixing = await asyncio.gather(spaces(), mixed())
        return drifted + mixing

    try:
        return asyncio.run(asyncio.wait_for(both(), DRIFT_TIMEOUT_S)), None
    except TimeoutError:
        return [], (
            f"the rooms of the internal spaces and those that mix servers were not checked: "
            f"the homeservers did not answer within {DRIFT_TIMEOUT_S:.0f} s"
        )
    except (HomeportError, SynapseApiError, httpx.HTTPError, OSError) as error:
        return [], (
            f"the rooms of the internal spaces were not checked: the homeservers do not "
            f"answer ({error}); with the deployment running (`homeport up`), lint and "
            "verify report what in them federates or holds other servers' users"
        )


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
    table.caption = (
        "[green]0 mismatches: every surface is as the policy says[/]"
        if report.mismatches == 0
        else f"[bold red]{report.mismatches} mismatch(es)[/]"
    )
    return table


def _until_signalled(work: Coroutine[Any, Any, Report]) -> Report:
    """Run verify; on SIGTERM or Ctrl-C it stops, removes its probes, then exits."""

    async def main() -> Report:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await work

    try:
        return asyncio.run(main())
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise HomeportError(
            "verify was interrupted; its probe users and rooms are removed"
        ) from None


def _check_ready(deployment: Deployment, config_path: Path) -> None:
    Control(DeploymentLayout(deployment.data_dir), config_path)  # raises when not running
    current = asyncio.run(gather_status(deployment))
    not_ready = [name for name, hs in current["homeservers"].items() if not hs["ready"]]
    if not_ready:
        raise HomeportError(
            f"not ready: {', '.join(not_ready)}; verify needs every homeserver "
            f"(`homeport start -c {config_path} NAME` starts a stopped one)"
        )
    where = escape(str(config_path))
    for name in unapplied(deployment):
        err_console.print(
            f"[yellow]warning:[/] {name} runs an older configuration than {where}; verify "
            f"expects what the file says: `homeport restart -c {where} {name}` applies it",
            highlight=False,
            soft_wrap=True,
        )


@click.command("verify")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print checks and mismatches as JSON.")
@reports_errors
def verify_command(config_path: Path, as_json: bool) -> None:
    """Prove the policy: what each homeserver's users really see of the others.

    For every ordered pair of homeservers it creates short-lived probe users and
    rooms, looks through the viewer's client API as a user would, compares with
    what the policy says, and removes the probes. It also reports the rooms of
    internal spaces that federate, hold other servers' users or are open to
    them (drift). Exit code 1 on any mismatch or drift error.
    """
    deployment, lines = load_deployment(config_path)
    internal = any(hs.policy.rooms.internal_spaces for hs in deployment.homeservers.values())
    if len(deployment.homeservers) < 2 and not internal:
        raise HomeportError(
            "verify needs at least two homeservers in the file, or internal spaces to check"
        )
    _check_ready(deployment, config_path)
    drift, unchecked = _drift(deployment)
    if unchecked:
        raise HomeportError(unchecked)
    if len(deployment.homeservers) < 2:
        _verify_alone(deployment, lines, config_path, drift, as_json)
        return
    started = time.monotonic()
    ssl_context = client_ssl_context(deployment)
    if as_json:
        report = _until_signalled(verify(deployment, ssl_context))
    else:
        with err_console.status("verifying") as spinner:
            report = _until_signalled(
                verify(deployment, ssl_context, lambda step: spinner.update(f"verifying: {step}"))
            )
    store = open_store(deployment)
    try:
        save_report(store, report)
    finally:
        store.dispose()
    if as_json:
        click.echo(
            json.dumps({**report.as_json(), "drift": _findings_json(drift, lines)}, indent=2)
        )
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
        if drift:
            console.print("What the running homeservers hold against the policy (drift)")
            print_findings(drift, lines, config_path)
        console.print(f"[dim]{time.monotonic() - started:.1f} s[/]")
    if report.mismatches or any(f.severity == "error" for f in drift):
        sys.exit(1)


def _findings_json(findings: list[Finding], lines: LineMap) -> list[dict[str, Any]]:
    """Findings as `lint --json` and `verify --json` print them."""
    return [
        {
            "id": f.id,
            "severity": f.severity,
            "homeserver": f.homeserver,
            "key": dotted(f.path),
            "line": finding_line(f, lines),
            "message": f.message,
            "explanation": f.explanation,
            "fix": f.fix,
        }
        for f in findings
    ]


def _verify_alone(
    deployment: Deployment, lines: LineMap, config_path: Path, drift: list[Finding], as_json: bool
) -> None:
    """One homeserver: no other server of the file to look from; its internal spaces are
    still checked for drift."""
    if as_json:
        click.echo(json.dumps({"checks": [], "drift": _findings_json(drift, lines)}, indent=2))
    else:
        console.print(
            "One homeserver: visibility between homeservers needs a second one in the file "
            "(its users look at this one's). Internal spaces checked."
        )
        print_findings(drift, lines, config_path)
        console.print("[green]No drift.[/]" if not drift else f"{len(drift)} finding(s)")
    if any(f.severity == "error" for f in drift):
        sys.exit(1)
