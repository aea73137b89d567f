"""A deployment with group sync over a test directory, and logging in to it as people do."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from homeport.layout import DeploymentLayout
from homeport.supervision.state import set_held
from homeport.trust import client_ssl_context
from tests.harness import RunningDeployment, edit_yaml, init_deployment, run_sync
from tests.ports import free_port_run


def group_sync_deployment(
    directory: Path, ldap: dict[str, Any], spaces: list[dict[str, Any]]
) -> Path:
    """`homeport init` as shipped (no relaxed settings), plus `group_sync:` on internal
    with these `ldap:` settings and spaces; the group sync service starts held, so that
    a test decides when group sync runs. Returns the homeport.yaml."""
    config = init_deployment(directory)

    def add_group_sync(data: Any) -> None:
        data["group_sync"] = {
            "homeserver": "internal",
            "port": free_port_run(1),
            "interval": "1h",  # between full reconciles only the watch can act
            "ldap": ldap,
            "spaces": spaces,
        }

    edit_yaml(config, add_group_sync)
    layout = DeploymentLayout(directory / "data")
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    set_held(layout, "groupsync", True)
    return config


def password_login(
    running: RunningDeployment, user: str, password: str, server: str = "internal"
) -> httpx.Response:
    """A password login as a client makes it, waiting out the login rate limits Homeport
    ships (a 429 is never an answer here); a login that hangs fails after two minutes."""
    hs = running.deployment.homeservers[server]

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=hs.base_url, verify=client_ssl_context(running.deployment), timeout=120
        ) as http:
            for _ in range(10):
                answer = await http.post(
                    "/_matrix/client/v3/login",
                    json={
                        "type": "m.login.password",
                        "identifier": {"type": "m.id.user", "user": user},
                        "password": password,
                    },
                )
                if answer.status_code != 429:
                    return answer
                await asyncio.sleep(answer.json().get("retry_after_ms", 1000) / 1000)
            return answer

    return run_sync(go())


def refused(answer: httpx.Response) -> bool:
    """Refused as a wrong password is: 403 M_FORBIDDEN (never a 429 or a 500)."""
    return (answer.status_code, answer.json().get("errcode")) == (403, "M_FORBIDDEN")
