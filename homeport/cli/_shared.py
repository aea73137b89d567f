"""What every command shares: the -c option, consoles, errors to exit codes, lint output."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from homeport.config.deployment import Deployment
from homeport.config.lines import LineMap, dotted
from homeport.errors import ConfigError, HomeportError, PolicyError
from homeport.policy.lint import Finding, has_errors, lint

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


prepared_option = click.option(
    "--prepared",
    is_flag=True,
    help="The data folder is complete (a cluster's Secret, rendered by `homeport render "
    "--target kubernetes`): create no key or certificate, migrate nothing.",
)


def alone_command(name: str) -> Callable[[F], click.Command]:
    """A command serving one of `up`'s services by itself: `-c`, `--prepared`, errors."""

    def command(function: F) -> click.Command:
        return click.command(name)(config_option(prepared_option(reports_errors(function))))

    return command


def to_serve_alone(config_path: Path, key: str, docs: str, prepared: bool) -> Deployment:
    """The deployment, for a command that serves its section `key`'s service alone (in a
    pod, say): refused without that section; unless `prepared`, with what `up` would
    prepare (keys, certificates, secrets) done first."""
    from homeport.config.loader import load_deployment

    deployment, lines = load_deployment(config_path)
    if getattr(deployment, key) is None:
        raise HomeportError(
            f"{config_path} has no `{key}:` section; add one with a port (see {docs})"
        )
    if not prepared:
        from homeport.runtime.prepare import materialize, preflight

        problems = preflight(deployment, lines, config_path, check_ports=False)
        if problems:
            raise ConfigError(problems)
        materialize(deployment)
    return deployment


def reports_errors(command: F) -> F:
    """Turn domain errors into a message on stderr and their exit code.

    The one place where errors become exit codes: 1 failure, 2 bad input.
    """

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


def check_homeserver(deployment: Deployment, name: str, services: tuple[str, ...] = ()) -> None:
    """NAME must be a homeserver of the file (or, where allowed, one of `services`)."""
    if name in deployment.homeservers or name in services:
        return
    known = ", ".join(deployment.homeservers)
    extra = f" (and the service: {', '.join(sorted(services))})" if services else ""
    raise click.BadParameter(f"no homeserver named {name!r}; this file has: {known}{extra}")


def finding_line(finding: Finding, lines: LineMap) -> int | None:
    return lines.line_of(finding.path)


def print_findings(findings: list[Finding], lines: LineMap, config_path: Path) -> None:
    styles = {"error": "bold red", "warning": "yellow"}
    for finding in findings:
        line = finding_line(finding, lines)
        where = f"{config_path}:{line}" if line is not None else str(config_path)
        key = dotted(finding.path)
        err_console.print(
            f"[{styles[finding.severity]}]{finding.severity}[/] [bold]{finding.id}[/] "
            f"{escape(where)}: {escape(key)}\n  {escape(finding.message)}\n"
            f"  [dim]why:[/] {escape(finding.explanation)}\n  [dim]fix:[/] {escape(finding.fix)}",
            highlight=False,
            soft_wrap=True,
        )


def lint_or_refuse(deployment: Deployment, lines: LineMap, config_path: Path) -> None:
    """Print the findings; refuse to go on (exit 2, nothing started) when one is an error."""
    findings = lint(deployment)
    if not findings:
        return
    print_findings(findings, lines, config_path)
    if has_errors(findings):
        raise PolicyError(
            f"the policy has errors (above); fix them, then check with "
            f"`homeport lint -c {config_path}`"
        )
