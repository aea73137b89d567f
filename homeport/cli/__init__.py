"""The command line: one thin module per group of commands.

Each command parses its arguments, calls one function of its capability,
and prints. Exit codes: 0 success, 1 failure, 2 bad input (configuration or
arguments); `_shared.reports_errors` is the one place that decides them.
A command's module is imported only when that command runs, so that
`homeport status` does not load the website and `homeport up` (which stays
resident) loads only what it supervises with.
"""

from __future__ import annotations

import click

from homeport import __version__
from homeport.capabilities import CAPABILITIES
from homeport.capability import imported

# Command name -> "module:attribute", in the order `--help` lists them: Homeport's
# own, then each capability's (`Capability.commands`), then the store and backups.
COMMANDS = {
    "init": "homeport.cli.setup:init",
    "render": "homeport.cli.setup:render",
    "lint": "homeport.cli.policy:lint_command",
    "up": "homeport.cli.running:up",
    "status": "homeport.cli.control:status",
    "stop": "homeport.cli.control:stop",
    "start": "homeport.cli.control:start",
    "restart": "homeport.cli.control:restart",
    "verify": "homeport.cli.policy:verify_command",
    "user": "homeport.cli.users:user",
    **{name: target for capability in CAPABILITIES for name, target in capability.commands},
    "store": "homeport.cli.store:store",
    "backup": "homeport.cli.backup:backup",
    "restore": "homeport.cli.backup:restore",
    "host": "homeport.cli.host:host",  # hidden: `up`'s process for Homeport's own services
}


class LazyGroup(click.Group):
    """Click's group, loading each command's module when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        command = imported(target)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="homeport")
def main() -> None:
    """Run, federate and govern your organisation's own Matrix homeservers.

    \b
    Start here:
      homeport init mydeployment
      homeport up -c mydeployment/homeport.yaml
    """


__all__ = ["main"]
