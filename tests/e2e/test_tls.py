"""TLS is really verified: a homeserver whose certificate comes from another CA cannot federate."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from homeport.homeserver.process import probe
from homeport.synapse.api import SynapseClient
from homeport.trust import client_ssl_context
from tests.harness import RunningDeployment, free_port_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    """A homeserver of another deployment: same host, its own local CA."""
    directory = tmp_path_factory.mktemp("rogue")
    port = free_port_run(1)
    config = directory / "homeport.yaml"
    config.write_text(
        f"homeservers:\n  rogue:\n    server_name: localhost:{port}\n    port: {port}\n"
    )
    running = RunningDeployment(config)
    running.start()
    yield running
    running.stop()
    running.kill_leftovers()


async def test_a_server_with_a_certificate_from_another_ca_cannot_federate(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext, rogue: RunningDeployment
) -> None:
    rogue_hs = rogue.deployment.homeservers["rogue"]
    # The rogue server is up and serves valid TLS for those who trust its CA...
    assert await probe(rogue_hs, client_ssl_context(rogue.deployment)) is not None
    # ...but not for us: its certificate is not from our CA.
    assert await probe(rogue_hs, pair_ssl) is None

    external = pair.deployment.homeservers["external"]
    user_id, password = await pair.new_user("external")
    async with SynapseClient(external.base_url, pair_ssl) as client:
        token = (await client.login(user_id, password)).access_token
    target = f"@nobody:{rogue_hs.server_name}"
    async with httpx.AsyncClient(verify=pair_ssl) as http:
        response = await http.get(
            f"{external.base_url}/_matrix/client/v3/profile/{quote(target)}",
            headers={"Authorization": f"Bearer {token}"},
        )
    # Synapse tried to reach the rogue server over federation and gave up.
    assert response.status_code >= 400, response.text

    # And the reason is the certificate, not a server that is down.
    log = Path(pair.layout.homeserver("external").log_file).read_text(errors="replace")
    failures = [
        line
        for line in log.splitlines()
        if f"[{rogue_hs.server_name}] Request failed" in line
        and "certificate verify failed" in line
    ]
    assert failures, "external's log shows no certificate failure for the rogue server"


async def test_our_own_server_is_reached_with_verification_on(
    pair: RunningDeployment, pair_ssl: ssl.SSLContext
) -> None:
    internal = pair.deployment.homeservers["internal"]
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        async with httpx.AsyncClient(verify=ssl.create_default_context()) as plain:
            await plain.get(f"{internal.base_url}/_matrix/federation/v1/version")
    assert await probe(internal, pair_ssl) is not None
