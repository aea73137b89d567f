"""Certificates of your own: `tls:` on a homeserver and its CA in `trusted_ca_files`.

A second certificate authority, made here, stands for the organisation's
own: external serves its certificate, internal (still on the local CA)
trusts it through `trusted_ca_files`, and they federate both ways with
verification on.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from homeport import pki
from homeport.trust import client_ssl_context
from tests.harness import (
    RunningDeployment,
    edit_yaml,
    init_deployment,
    running_deployment,
    status_json,
)
from tests.matrix import exchange_messages

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def corporate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    directory = tmp_path_factory.mktemp("own-certificates")
    corp = directory / "corp"
    ca, _ = pki.ensure_ca(corp / "ca.crt", corp / "ca.key", "Example Corp", ["localhost"])
    pki.ensure_leaf(ca, "localhost", corp / "external.crt", corp / "external.key")
    config = init_deployment(directory)

    def own_certificate(data: Any) -> None:
        data["trusted_ca_files"] = [str(corp / "ca.crt")]
        data["homeservers"]["external"]["tls"] = {
            "certificate": str(corp / "external.crt"),
            "key": str(corp / "external.key"),
        }

    edit_yaml(config, own_certificate)
    with running_deployment(config) as running:
        yield running


def _issuer_of(host: str, port: int, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).issuer.rfc4514_string()


async def test_a_homeserver_with_its_own_certificate_federates_both_ways(
    corporate: RunningDeployment,
) -> None:
    deployment = corporate.deployment
    external = deployment.homeservers["external"]
    context = client_ssl_context(deployment)
    # External really serves the corporate certificate, verified.
    assert "Example Corp" in _issuer_of("localhost", external.port, context)
    internal = deployment.homeservers["internal"]
    assert "Homeport local CA" in _issuer_of("localhost", internal.port, context)
    # The local CA does not cover external's host: it is not one of its names.
    local = x509.load_pem_x509_certificate(corporate.layout.ca_certificate.read_bytes())
    constraints = local.extensions.get_extension_for_class(x509.NameConstraints).value
    assert constraints.permitted_subtrees == [x509.DNSName("localhost")]
    assert status_json(corporate.config_path)["homeservers"]["external"]["ready"] is True
    users = [await corporate.new_user("internal"), await corporate.new_user("external")]
    alice, bob = ({"user_id": u, "password": p} for u, p in users)
    await exchange_messages(corporate, context, alice, bob, alias="corp")


def test_without_trusting_the_corporate_ca_the_certificate_is_refused(
    corporate: RunningDeployment,
) -> None:
    external = corporate.deployment.homeservers["external"]
    only_local = ssl.create_default_context(cafile=str(corporate.layout.ca_certificate))
    with pytest.raises(ssl.SSLCertVerificationError):
        _issuer_of("localhost", external.port, only_local)
