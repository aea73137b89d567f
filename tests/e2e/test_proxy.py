"""Two homeservers, the admin website and the conference service behind one nginx on 443.

The deployment is the starter on the settings Homeport ships, with server
names without a port, one homeserver served on a host of its own
(`public_host`), and `proxy:` in front. nginx runs with exactly what
`homeport render --target nginx` wrote. The names resolve to the proxy's
address, 127.10.0.1, as DNS would in production (scripts/test puts them in
/etc/hosts), and the proxy listens on port 443 there: federation finds each
server through its well-known, as on the Internet. Homeport's own services
reach external's listener at a host name (`service_host`), as in a cluster.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from homeport.trust import client_ssl_context
from tests.harness import (
    RunningDeployment,
    access_token,
    edit_yaml,
    homeport,
    init_deployment,
    running_deployment,
)
from tests.matrix import exchange_messages
from tests.nginx import check_config, main_config, running_nginx

pytestmark = pytest.mark.e2e

PROXY = "127.10.0.1"
ELSEWHERE = "127.0.0.2"  # a client address outside `admin_from`
NAMES = {
    "internal": "internal.homeport.test",
    "external": "external.homeport.test",
    "external_public": "matrix-external.homeport.test",
    "admin": "admin.homeport.test",
    "conference": "meet.homeport.test",
}
MAX_UPLOAD = 2 * 1024 * 1024


def _names_resolve_to_the_proxy() -> None:
    for name in NAMES.values():
        try:
            address = socket.gethostbyname(name)
        except OSError:
            address = None
        assert address == PROXY, (
            f"{name} must resolve to {PROXY} for this test (it is {address}); "
            "scripts/test adds the names to /etc/hosts"
        )


def _behind_proxy(data: Any) -> None:
    data["homeservers"]["internal"]["server_name"] = NAMES["internal"]
    external = data["homeservers"]["external"]
    external["server_name"] = NAMES["external"]
    external["public_host"] = NAMES["external_public"]
    external["synapse"] = {"max_upload_size": "2M"}
    # Homeport's services reach external's listener by a host name (as in a
    # cluster, at its Service): it listens beside the proxy, on its own port.
    external["address"] = PROXY
    external["service_host"] = NAMES["external_public"]
    data["admin"]["host"] = NAMES["admin"]
    data["conference"]["host"] = NAMES["conference"]
    data["proxy"] = {"address": PROXY, "port": 443}


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningDeployment, Path]]:
    _names_resolve_to_the_proxy()
    directory = tmp_path_factory.mktemp("proxy")
    config = init_deployment(directory)  # the settings Homeport ships
    edit_yaml(config, _behind_proxy)
    rendered = directory / "nginx"
    homeport("render", "-c", str(config), "--target", "nginx", "--out", str(rendered))
    server = directory / "nginx-run"
    server.mkdir()
    nginx_config = main_config(server, rendered / "homeport.conf")
    checked = check_config(nginx_config)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    with running_deployment(config) as running, running_nginx(nginx_config, PROXY, 443):
        yield running, server


@pytest.fixture(scope="module")
def trust(proxied: tuple[RunningDeployment, Path]) -> ssl.SSLContext:
    return client_ssl_context(proxied[0].deployment)


def _from(address: str, context: ssl.SSLContext) -> httpx.AsyncClient:
    """A client whose requests leave from `address`."""
    transport = httpx.AsyncHTTPTransport(local_address=address, verify=context)
    return httpx.AsyncClient(transport=transport, timeout=30)


def _nginx_refusal(response: httpx.Response) -> None:
    """nginx's own 403 page: the request never reached Homeport or Synapse."""
    assert response.status_code == 403, response.text
    assert "<center>nginx</center>" in response.text, response.text


async def test_each_host_name_reaches_its_own_homeserver(trust: ssl.SSLContext) -> None:
    async with httpx.AsyncClient(verify=trust) as http:
        for host, server_name in (
            (NAMES["internal"], NAMES["internal"]),
            (NAMES["external_public"], NAMES["external"]),
        ):
            response = await http.get(f"https://{host}/_matrix/key/v2/server")
            assert response.status_code == 200, response.text
            assert response.json()["server_name"] == server_name
            assert response.headers["strict-transport-security"] == "max-age=31536000"
        # The server name's own host only delegates.
        response = await http.get(f"https://{NAMES['external']}/_matrix/client/versions")
        assert response.status_code == 404
        # A name the proxy does not serve gets no handshake, so no certificate either.
        with pytest.raises(httpx.ConnectError):
            await http.get(
                f"https://{PROXY}/_matrix/key/v2/server",
                extensions={"sni_hostname": "elsewhere.homeport.test"},
            )


async def test_well_knowns_delegate_federation_to_port_443(trust: ssl.SSLContext) -> None:
    expected = {
        NAMES["internal"]: (f"{NAMES['internal']}:443", f"https://{NAMES['internal']}/"),
        NAMES["external"]: (
            f"{NAMES['external_public']}:443",
            f"https://{NAMES['external_public']}/",
        ),
        NAMES["external_public"]: (
            f"{NAMES['external_public']}:443",
            f"https://{NAMES['external_public']}/",
        ),
    }
    async with httpx.AsyncClient(verify=trust) as http:
        for host, (server, base_url) in expected.items():
            answer = await http.get(f"https://{host}/.well-known/matrix/server")
            assert answer.status_code == 200
            assert answer.json() == {"m.server": server}
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["access-control-allow-origin"] == "*"
            client = await http.get(f"https://{host}/.well-known/matrix/client")
            assert client.json()["m.homeserver"] == {"base_url": base_url}
            assert client.headers["access-control-allow-origin"] == "*"


async def test_homeservers_federate_through_the_proxy(
    proxied: tuple[RunningDeployment, Path], trust: ssl.SSLContext
) -> None:
    running, server = proxied
    users = {}
    for name in ("internal", "external"):
        user_id, password = await running.new_user(name)
        users[name] = {"user_id": user_id, "password": password}
    # Clients use the public URLs (the proxy); a room on external, joined from internal.
    await exchange_messages(running, trust, users["internal"], users["external"], "through-443")
    log = (server / "access.log").read_text()
    federation = [line for line in log.splitlines() if "/_matrix/federation/" in line]
    for host in (NAMES["internal"], NAMES["external_public"]):
        assert any(f" {host} " in line and '" 200' in line for line in federation), (
            f"no federation request reached {host} through nginx:\n" + "\n".join(federation)
        )


async def _internal_admin(running: RunningDeployment) -> tuple[str, dict[str, str]]:
    """A new server admin of internal: (user ID, authorization header)."""
    admin_id, password = await running.new_user("internal", admin=True)
    token, _ = await access_token(running.deployment, "internal", admin_id, password)
    return admin_id, {"Authorization": f"Bearer {token}"}


async def test_admin_paths_only_from_allowed_addresses(
    proxied: tuple[RunningDeployment, Path], trust: ssl.SSLContext
) -> None:
    running, _ = proxied
    admin_id, auth = await _internal_admin(running)
    base = f"https://{NAMES['internal']}"
    paths = (f"/_synapse/admin/v2/users/{quote(admin_id)}", "/_homeport/v1/background_updates")
    async with _from("127.0.0.1", trust) as inside, _from(ELSEWHERE, trust) as outside:
        for path in paths:
            allowed = await inside.get(base + path, headers=auth)
            assert allowed.status_code == 200, allowed.text
            # Refused by nginx, whatever the client claims to be.
            refused = await outside.get(base + path, headers={**auth, "X-Forwarded-For": PROXY})
            _nginx_refusal(refused)
        website = f"https://{NAMES['admin']}/login"
        assert (await inside.get(website)).status_code == 200
        _nginx_refusal(await outside.get(website))
        conference = f"https://{NAMES['conference']}"
        health = await outside.get(f"{conference}/health")
        assert health.status_code == 200, health.text
        _nginx_refusal(await outside.get(f"{conference}/metrics"))


async def test_synapse_sees_the_clients_address(
    proxied: tuple[RunningDeployment, Path], trust: ssl.SSLContext
) -> None:
    """Behind the proxy Synapse logs and rate-limits the client, not the proxy."""
    running, _ = proxied
    _, admin = await _internal_admin(running)
    user_id, password = await running.new_user("internal")
    base = f"https://{NAMES['internal']}"
    async with _from(ELSEWHERE, trust) as outside, _from("127.0.0.1", trust) as inside:
        login = await outside.post(
            f"{base}/_matrix/client/v3/login",
            json={"type": "m.login.password", "user": user_id, "password": password},
        )
        assert login.status_code == 200, login.text
        user_token = login.json()["access_token"]
        whoami = await outside.get(
            f"{base}/_matrix/client/v3/account/whoami",
            headers={"Authorization": f"Bearer {user_token}"},
        )
        assert whoami.status_code == 200, whoami.text
        addresses: set[str] = set()
        deadline = time.monotonic() + 30
        while ELSEWHERE not in addresses and time.monotonic() < deadline:
            whois = await inside.get(
                f"{base}/_synapse/admin/v1/whois/{quote(user_id)}",
                headers=admin,
            )
            assert whois.status_code == 200, whois.text
            addresses = {
                connection["ip"]
                for device in whois.json()["devices"].values()
                for session in device["sessions"]
                for connection in session["connections"]
            }
            await asyncio.sleep(0.5)
    assert addresses == {ELSEWHERE}


async def test_uploads_are_limited_as_synapse_limits_them(
    proxied: tuple[RunningDeployment, Path], trust: ssl.SSLContext
) -> None:
    running, _ = proxied
    user_id, password = await running.new_user("external")
    token, _ = await access_token(running.deployment, "external", user_id, password)
    url = f"https://{NAMES['external_public']}/_matrix/media/v3/upload"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
    async with httpx.AsyncClient(verify=trust, timeout=60) as http:
        fits = await http.post(url, content=b"x" * (MAX_UPLOAD - 1024), headers=headers)
        assert fits.status_code == 200, fits.text
        assert fits.json()["content_uri"].startswith(f"mxc://{NAMES['external']}/")
        too_big = await http.post(url, content=b"x" * (MAX_UPLOAD + 1), headers=headers)
    assert too_big.status_code == 413
    assert "<center>nginx</center>" in too_big.text  # refused before Synapse read it
