"""`homeport user create`: accounts on the deployment's homeservers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from homeport.cli._shared import check_homeserver, config_option, reports_errors
from homeport.config.loader import load_deployment
from homeport.synapse.users import check_localpart, create_user, generate_password


@click.group()
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
    check_homeserver(deployment, server)
    try:
        check_localpart(localpart, deployment.homeservers[server].bot_localparts)
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
