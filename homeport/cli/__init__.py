"""The command line: one thin module per group of commands.

Each command parses its arguments, calls one function of its capability,
and prints. Exit codes: 0 success, 1 failure, 2 bad input (configuration or
arguments); `_shared.reports_errors` is the one place that decides them.
"""

from __future__ import annotations

import click

from homeport import __version__
from homeport.cli.admin import admin_command
from homeport.cli.policy import lint_command, verify_command
from homeport.cli.running import restart, start, status, stop, up
from homeport.cli.setup import init, render
from homeport.cli.store import store
from homeport.cli.users import user


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="homeport")
def main() -> None:
    """Run, federate and govern your organisation's own Matrix homeservers.

    \b
    Start here:
      homeport init mydeployment
      homeport up -c mydeployment/homeport.yaml
    """


for command in (
    init,
    render,
    lint_command,
    up,
    stop,
    start,
    restart,
    status,
    verify_command,
    admin_command,
    user,
    store,
):
    main.add_command(command)

__all__ = ["main"]
