"""`homeport up`: run the deployment in the foreground."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from homeport.cli._progress import RichReporter, watch
from homeport.cli._shared import (
    config_option,
    lint_or_refuse,
    reports_errors,
)
from homeport.config.loader import load_deployment
from homeport.errors import ConfigError
from homeport.layout import DeploymentLayout
from homeport.runtime.prepare import materialize, preflight
from homeport.runtime.up import refuse_if_running, run_up


@click.command()
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
    refuse_if_running(layout, config_path)
    lint_or_refuse(deployment, lines, config_path)
    problems = preflight(deployment, lines, config_path)
    if problems:
        raise ConfigError(problems)
    materialize(deployment)
    reporter = RichReporter(deployment)
    run_up(
        deployment, config_path, reporter, functools.partial(watch, reporter, deployment, layout)
    )
