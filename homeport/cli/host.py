"""`homeport host`: the process `up` runs Homeport's own services in (not for people)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from homeport.capabilities import CAPABILITIES
from homeport.cli._shared import config_option, reports_errors
from homeport.config.loader import load_deployment
from homeport.supervision.host_process import HostedMain, run_host


def _socket_option(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, int]:
    sockets = {}
    for value in values:
        name, _, fd = value.rpartition("=")
        if not name or not fd.isdigit():
            raise click.BadParameter(f"{value!r}: expected NAME=FD")
        sockets[name] = int(fd)
    return sockets


@click.command("host", hidden=True)
@config_option
@click.option("--control", "control_fd", type=int, required=True)
@click.option("--socket", "sockets", multiple=True, callback=_socket_option)
@reports_errors
def host(config_path: Path, control_fd: int, sockets: dict[str, int]) -> None:
    """Run the services `up` asks for, each on the socket `up` bound for it."""
    deployment, _ = load_deployment(config_path)

    def main_of(service: str) -> HostedMain:
        for capability in CAPABILITIES:
            main = capability.hosted_main(deployment, service, CAPABILITIES)
            if main is not None:
                return main
        raise LookupError(f"no capability runs a service named {service!r}")

    asyncio.run(run_host(main_of, control_fd, sockets))
