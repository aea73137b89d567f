"""Steering and watching a running deployment: `stop`, `start`, `restart`, `status`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
from rich.table import Table

from homeport.capabilities import CAPABILITIES
from homeport.cli._shared import (
    check_homeserver,
    config_option,
    console,
    lint_or_refuse,
    reports_errors,
)
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment
from homeport.config.types import ADMIN_SERVICE
from homeport.layout import DeploymentLayout
from homeport.policy.backoff import spoken
from homeport.runtime.control import Control
from homeport.runtime.restart import restart_homeserver, worker_services
from homeport.runtime.status import FederationSummary, Status, gather_status


def _controllable(deployment: Deployment) -> dict[str, Path]:
    """Homeport's own services this file runs, which stop and start take by name too,
    with each one's log."""
    layout = DeploymentLayout(deployment.data_dir)
    return {
        name: log
        for capability in CAPABILITIES
        for name, log in capability.controllable(deployment, layout).items()
    }


def _services(deployment: Deployment) -> tuple[str, ...]:
    return tuple(_controllable(deployment))


def _log_of(layout: DeploymentLayout, deployment: Deployment, name: str) -> Path:
    if name in deployment.homeservers:
        return layout.homeserver(name).log_file
    return _controllable(deployment)[name]


@click.command()
@config_option
@click.argument("name")
@reports_errors
def stop(config_path: Path, name: str) -> None:
    """Stop homeserver NAME (with its workers) or one of Homeport's services.

    It stays stopped until `homeport start NAME`, even across a restart of `up`.
    """
    deployment, _ = load_deployment(config_path)
    check_homeserver(deployment, name, _services(deployment))
    control = Control(DeploymentLayout(deployment.data_dir), config_path)
    if name in deployment.homeservers:
        control.hold_homeserver(name, worker_services(deployment, control, name))
    else:
        control.hold(name)
    console.print(f"{name} stopped; `homeport start -c {config_path} {name}` starts it again.")


@click.command()
@config_option
@click.argument("name")
@reports_errors
def start(config_path: Path, name: str) -> None:
    """Start homeserver NAME (then its workers) or a service again; wait until it is ready."""
    deployment, _ = load_deployment(config_path)
    check_homeserver(deployment, name, _services(deployment))
    layout = DeploymentLayout(deployment.data_dir)
    control = Control(layout, config_path)
    if name in deployment.homeservers:
        workers = worker_services(deployment, control, name)
        control.release_homeserver(name, workers, _log_of(layout, deployment, name))
    else:
        control.release(name)
        control.wait_ready(name, _log_of(layout, deployment, name))
    console.print(f"{name} is ready at {_address(deployment, name, control.url_of(name))}")


def _address(deployment: Deployment, name: str, published: str | None) -> str:
    """Where NAME answers: a homeserver's and the website's public address (through
    the proxy, if any), otherwise what the running `up` publishes for the service."""
    hs = deployment.homeservers.get(name)
    if hs is not None:
        return hs.base_url
    if name == ADMIN_SERVICE and deployment.admin_url:
        return deployment.admin_url
    return published or ""


@click.command()
@config_option
@click.argument("name")
@reports_errors
def restart(config_path: Path, name: str) -> None:
    """Apply homeport.yaml to homeserver NAME: re-render its config and restart it.

    The others keep running. Policy and `synapse:` settings can change this way;
    a new server name, address, port or database needs a new `homeport up`.
    """
    deployment, lines = load_deployment(config_path)
    check_homeserver(deployment, name)
    control = Control(DeploymentLayout(deployment.data_dir), config_path)
    lint_or_refuse(deployment, lines, config_path)
    reset = restart_homeserver(deployment, control, name)
    console.print(f"{name} restarted with the new configuration; the others kept running.")
    for other in reset:
        console.print(f"{other} was backing off from {name}: reset, it retries now.")


def _yes(value: bool, otherwise: str = "[red]no[/]") -> str:
    return "[green]yes[/]" if value else otherwise


def _not_delivering(federation: FederationSummary) -> str:
    """'0', or '1: external.org (3 min)': the count and the longest outage."""
    count = federation["not_delivering"]
    if not count:
        return "0"
    oldest = federation["undelivered"][0]
    return f"[red]{count}[/]: {oldest['destination']} ({spoken(oldest['waiting_seconds'])})"


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
        "not delivering",
        title="Homeport status" + ("" if status["running"] else " (not running)"),
    )
    for name, hs in status["homeservers"].items():
        federation = hs["federation"]
        table.add_row(
            name,
            hs["server_name"],
            _yes(hs["running"], "[yellow]held[/]" if hs["held"] else "[red]no[/]"),
            _yes(hs["ready"]),
            str(hs["pid"] or ""),
            (hs["synapse_version"] or "").split(" ")[0],
            str(federation["destinations"]) if federation else "",
            str(federation["failing"]) if federation else "",
            _not_delivering(federation) if federation else "",
        )
    others = [name for name in status["services"] if name not in status["homeservers"]]
    for name in others:
        service = status["services"][name]
        table.add_row(
            name,
            service["kind"],
            _yes(service["running"], "[yellow]held[/]" if service["held"] else "[red]no[/]"),
            _yes(service["state"] == "ready"),
            str(service["pid"] or ""),
        )
    table.caption = f"CA certificate: {status['ca_cert']}"
    for capability in CAPABILITIES:
        for line in capability.status_lines(status):
            table.caption += f"\n{line}"
    return table


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the documented JSON format.")
@reports_errors
def status(config_path: Path, as_json: bool) -> None:
    """Show each homeserver and service: running, ready, version, federation destinations.

    `--json` prints a stable format for scripts (docs/status-json.md).
    """
    deployment, _ = load_deployment(config_path)
    result = asyncio.run(gather_status(deployment))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        console.print(_status_table(result))
