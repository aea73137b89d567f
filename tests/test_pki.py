"""The local CA and leaf certificates: created once, verified for real, private keys 0600."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from homeport import pki


@contextlib.contextmanager
def mock_now(moment: dt.datetime) -> Iterator[None]:
    """Homeport's idea of now, moved (the CA's age is judged against it)."""
    real = pki._now
    pki._now = lambda: moment
    try:
        yield
    finally:
        pki._now = real


HOSTS = ["localhost", "matrix.example.org", "127.0.0.1", "[::1]"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _verify(ca: pki.CertificateAuthority, cert_path: Path, name: x509.GeneralName) -> None:
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    verifier = PolicyBuilder().store(Store([ca.certificate])).build_server_verifier(name)  # type: ignore[arg-type]
    verifier.verify(leaf, [])


def test_ca_is_created_once(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t", HOSTS)[0]
    assert _mode(tmp_path / "ca.key") == 0o600
    again = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t", HOSTS)[0]
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
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t", HOSTS)[0]
    assert pki.ensure_leaf(ca, host, tmp_path / "s.crt", tmp_path / "s.key") is True
    assert _mode(tmp_path / "s.key") == 0o600
    _verify(ca, tmp_path / "s.crt", name)


def test_leaf_is_kept_until_its_host_changes(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t", HOSTS)[0]
    pki.ensure_leaf(ca, "localhost", tmp_path / "s.crt", tmp_path / "s.key")
    first = (tmp_path / "s.crt").read_bytes()
    assert pki.ensure_leaf(ca, "localhost", tmp_path / "s.crt", tmp_path / "s.key") is False
    assert (tmp_path / "s.crt").read_bytes() == first
    assert pki.ensure_leaf(ca, "other.localhost", tmp_path / "s.crt", tmp_path / "s.key") is True


def test_a_certificate_from_another_ca_does_not_verify(tmp_path: Path) -> None:
    ours = pki.ensure_ca(tmp_path / "a.crt", tmp_path / "a.key", "ours", HOSTS)[0]
    theirs = pki.ensure_ca(tmp_path / "b.crt", tmp_path / "b.key", "theirs", HOSTS)[0]
    pki.ensure_leaf(theirs, "localhost", tmp_path / "s.crt", tmp_path / "s.key")
    with pytest.raises(VerificationError):
        _verify(ours, tmp_path / "s.crt", x509.DNSName("localhost"))
    # A leaf issued by another CA is replaced rather than trusted.
    assert pki.ensure_leaf(ours, "localhost", tmp_path / "s.crt", tmp_path / "s.key") is True
    _verify(ours, tmp_path / "s.crt", x509.DNSName("localhost"))


def test_the_ca_vouches_only_for_the_deployment_s_names(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t", ["localhost"])[0]
    constraints = ca.certificate.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName("localhost")]
    # Whoever holds the CA key can still sign a certificate for another site,
    # but no verifier that trusts the CA accepts it.
    pki.ensure_leaf(ca, "bank.example.com", tmp_path / "evil.crt", tmp_path / "evil.key")
    with pytest.raises(VerificationError):
        _verify(ca, tmp_path / "evil.crt", x509.DNSName("bank.example.com"))
    pki.ensure_leaf(ca, "localhost", tmp_path / "ok.crt", tmp_path / "ok.key")
    _verify(ca, tmp_path / "ok.crt", x509.DNSName("localhost"))


def _handshake(ca_file: Path, cert: Path, key: Path, host: str) -> None:
    """A real TLS handshake (OpenSSL, as Synapse and httpx use it) over a socket pair."""
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    client_side = ssl.create_default_context(cafile=str(ca_file))
    a, b = socket.socketpair()
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            with server_side.wrap_socket(a, server_side=True):
                pass
        except (ssl.SSLError, OSError) as error:
            failures.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_side.wrap_socket(b, server_hostname=host):
            pass
    finally:
        b.close()
        thread.join(10)
        a.close()


def test_openssl_refuses_a_name_outside_the_constraints(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca.crt", tmp_path / "ca.key", "t", ["localhost"])[0]
    pki.ensure_leaf(ca, "localhost", tmp_path / "ok.crt", tmp_path / "ok.key")
    _handshake(tmp_path / "ca.crt", tmp_path / "ok.crt", tmp_path / "ok.key", "localhost")
    pki.ensure_leaf(ca, "bank.example.com", tmp_path / "evil.crt", tmp_path / "evil.key")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"name constraint|permitted"):
        _handshake(
            tmp_path / "ca.crt", tmp_path / "evil.crt", tmp_path / "evil.key", "bank.example.com"
        )


def test_a_new_name_or_an_ageing_ca_brings_a_new_ca_and_new_leaves(tmp_path: Path) -> None:
    paths = (tmp_path / "ca.crt", tmp_path / "ca.key")
    first, made = pki.ensure_ca(*paths, "t", ["localhost"])
    assert made
    same, made = pki.ensure_ca(*paths, "t", ["localhost"])
    assert (same.certificate, made) == (first.certificate, False)
    pki.ensure_leaf(first, "localhost", tmp_path / "s.crt", tmp_path / "s.key")
    # The admin website moves to a new host name: the CA must cover it.
    assert not pki.ca_fits(paths[0], ["localhost", "admin.example.org"])
    second, made = pki.ensure_ca(*paths, "t", ["localhost", "admin.example.org"])
    assert made
    assert second.certificate != first.certificate
    # Same subject name, another key: the old leaf is reissued, not trusted.
    assert pki.ensure_leaf(second, "localhost", tmp_path / "s.crt", tmp_path / "s.key") is True
    _verify(second, tmp_path / "s.crt", x509.DNSName("localhost"))
    # A CA within 90 days of its end is replaced too.
    future = pki._now() + pki.CA_LIFETIME - pki.CA_RENEW_BEFORE + dt.timedelta(days=1)
    with mock_now(future):
        assert not pki.ca_fits(paths[0], ["localhost", "admin.example.org"])


@pytest.mark.parametrize(
    ("name", "host", "covers"),
    [
        ("hs.example.org", "hs.example.org", True),
        ("HS.example.org", "hs.example.org", True),
        ("*.example.org", "hs.example.org", True),
        ("*.example.org", "example.org", False),
        ("*.example.org", "a.hs.example.org", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("::1", "[::1]", True),
        ("other.example.org", "hs.example.org", False),
    ],
)
def test_certificate_names_cover_hosts_as_tls_does(name: str, host: str, covers: bool) -> None:
    assert pki.name_covers(name, host) is covers


def test_the_same_names_in_another_order_keep_the_ca(tmp_path: Path) -> None:
    """The capabilities list their hosts in registry order; an upgrade that lists them in
    another order must not replace the CA (which would make every sibling trust anew)."""
    paths = (tmp_path / "ca.crt", tmp_path / "ca.key")
    first, made = pki.ensure_ca(*paths, "t", HOSTS)
    assert made
    reordered = list(reversed(HOSTS))
    assert pki.ca_fits(paths[0], reordered)
    same, made = pki.ensure_ca(*paths, "t", reordered)
    assert (same.certificate, made) == (first.certificate, False)
    assert not pki.ca_fits(paths[0], [*HOSTS, "meet.example.org"])
    assert not pki.ca_fits(paths[0], HOSTS[:-1])
