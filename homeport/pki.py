"""A local certificate authority and one certificate per homeserver.

The CA is created in the data folder. Every homeserver trusts it for
federation with verification on, so two homeservers on one machine federate
over real, verified TLS. Leaf certificates are reissued when they near
expiry, when the server name changes, or when the CA is new.

The CA can vouch only for the deployment's own names: a critical
NameConstraints extension lists them, so its key (or a browser told to
trust `ca.crt` for the website) is worth nothing for any other site. When
the names change or the CA nears its end (it lives 2 years), `homeport up`
replaces it with a new one and reissues every certificate (`rotate`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from homeport.files import write_atomic, write_private

CA_LIFETIME = dt.timedelta(days=730)
LEAF_LIFETIME = dt.timedelta(days=397)
RENEW_BEFORE = dt.timedelta(days=30)
CA_RENEW_BEFORE = dt.timedelta(days=90)


# The nine uses X.509 names for a key; cryptography wants each one said.
KEY_USES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _key_usage(*allowed: str) -> x509.KeyUsage:
    """A KeyUsage extension allowing only the uses named."""
    assert set(allowed) <= set(KEY_USES), allowed
    return x509.KeyUsage(**{use: use in allowed for use in KEY_USES})


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _constraints(hosts: list[str]) -> x509.NameConstraints:
    """The names the CA may vouch for: these hosts (and their subdomains), these addresses."""
    permitted: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            permitted.append(x509.DNSName(host))
        else:
            permitted.append(x509.IPAddress(ipaddress.ip_network(address)))
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None)


def _covers(certificate: x509.Certificate, hosts: list[str]) -> bool:
    """The CA is constrained to exactly these hosts and is not near its end."""
    if certificate.not_valid_after_utc - CA_RENEW_BEFORE < _now():
        return False
    try:
        found = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return False  # made by an older Homeport: unconstrained
    wanted = _constraints(hosts)
    permitted = found.value.permitted_subtrees or []
    # The same names in any order: the order hosts are listed in is no reason for a new CA.
    return (
        found.critical
        and found.value.excluded_subtrees is None
        and set(permitted) == set(wanted.permitted_subtrees or [])
        and len(permitted) == len(wanted.permitted_subtrees or [])
    )


def ca_fits(cert_path: Path, hosts: list[str]) -> bool:
    """Whether the CA on disk (if any) can stay for these hosts."""
    if not cert_path.exists():
        return False
    return _covers(x509.load_pem_x509_certificate(cert_path.read_bytes()), hosts)


def ensure_ca(
    cert_path: Path, key_path: Path, label: str, hosts: list[str]
) -> tuple[CertificateAuthority, bool]:
    """The CA for `hosts`: the one on disk while it fits, else a new one. (CA, made now)."""
    if cert_path.exists() and key_path.exists():
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC private key")
        if _covers(certificate, hosts):
            return CertificateAuthority(certificate, key), False
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Homeport local CA ({label})")])
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage("key_cert_sign", "crl_sign"),
            critical=True,
        )
        .add_extension(_constraints(hosts), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, _private_pem(key))
    write_atomic(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return CertificateAuthority(certificate, key), True


def _san_for(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def _leaf_is_current(cert_path: Path, ca: CertificateAuthority, host: str) -> bool:
    if not cert_path.exists():
        return False
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if certificate.issuer != ca.certificate.subject:
        return False
    try:
        issued_by = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return False
    ours = x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key()).digest
    if issued_by.value.key_identifier != ours:
        return False  # the same name, an earlier CA
    if certificate.not_valid_after_utc - RENEW_BEFORE < _now():
        return False
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return _san_for(host) in sans


def ensure_leaf(ca: CertificateAuthority, host: str, cert_path: Path, key_path: Path) -> bool:
    """Issue a server certificate for `host` unless a current one exists. True if issued."""
    if key_path.exists() and _leaf_is_current(cert_path, ca, host):
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host.strip("[]"))]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([_san_for(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    write_private(key_path, _private_pem(key))
    chain = certificate.public_bytes(serialization.Encoding.PEM)
    write_atomic(cert_path, chain)
    return True


def certificate_names(pem: bytes) -> list[str]:
    """The DNS names and IP addresses a (leaf) certificate's SAN lists."""
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    addresses = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return [*san.get_values_for_type(x509.DNSName), *addresses]


def name_covers(name: str, host: str) -> bool:
    """Whether a SAN entry covers `host`: exactly, or a wildcard for one label (RFC 6125)."""
    host = host.strip("[]").lower()
    name = name.lower()
    if name.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == name[2:]
    return name == host


def certificate_problem(path: Path, host: str) -> str | None:
    """Why the certificate at `path` would fail TLS for `host`, if it would."""
    if not path.is_file():
        return None  # said already
    try:
        names = certificate_names(path.read_bytes())
    except ValueError:
        return f"{path} is not a PEM certificate"
    if any(name_covers(name, host) for name in names):
        return None
    listed = ", ".join(names) or "no names"
    return (
        f"the certificate in {path} covers {listed}, not {host}: "
        "other servers and clients would refuse it"
    )
