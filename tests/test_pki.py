"""The local CA and leaf certificates: created once, verified for real, private keys 0600."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from homeport import pki


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _verify(ca: pki.CertificateAuthority, cert_path: Path, name: x509.GeneralName) -> None:
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    verifier = PolicyBuilder().store(Store([ca.certificate])).build_server_verifier(name)  # type: ignore[arg-type]
    verifier.verify(leaf, [])


def test_ca_is_created_once(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t")
    assert _mode(tmp_path / "ca.key") == 0o600
    again = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t")
    assert again.certificate == ca.certificate


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("localhost", x509.DNSName("localhost")),
        ("matrix.example.org", x509.DNSName("matrix.example.org")),
        ("127.0.0.1", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        ("[::1]", x509.IPAddress(ipaddress.ip_address("::1"))),
    ],
)
def test_leaf_verifies_against_the_ca(tmp_path: Path, host: str, name: x509.GeneralName) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t")
    assert pki.ensure_leaf(ca, host, tmp_path / "s.crt", tmp_path / "s.key") is True
    assert _mode(tmp_path / "s.key") == 0o600
    _verify(ca, tmp_path / "s.crt", name)


def test_leaf_is_kept_until_its_host_changes(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t")
    pki.ensure_leaf(ca, "localhost", tmp_path / "s.crt", tmp_path / "s.key")
    first = (tmp_path / "s.crt").read_bytes()
    assert pki.ensure_leaf(ca, "localhost", tmp_path / "s.crt", tmp_path / "s.key") is False
    assert (tmp_path / "s.crt").read_bytes() == first
    assert pki.ensure_leaf(ca, "other.localhost", tmp_path / "s.crt", tmp_path / "s.key") is True


def test_a_certificate_from_another_ca_does_not_verify(tmp_path: Path) -> None:
    ours = pki.ensure_ca(tmp_path / "a.crt", tmp_path / "a.key", "ours")
    theirs = pki.ensure_ca(tmp_path / "b.crt", tmp_path / "b.key", "theirs")
    pki.ensure_leaf(theirs, "localhost", tmp_path / "s.crt", tmp_path / "s.key")
    with pytest.raises(VerificationError):
        _verify(ours, tmp_path / "s.crt", x509.DNSName("localhost"))
    # A leaf issued by another CA is replaced rather than trusted.
    assert pki.ensure_leaf(ours, "localhost", tmp_path / "s.crt", tmp_path / "s.key") is True
    _verify(ours, tmp_path / "s.crt", x509.DNSName("localhost"))
