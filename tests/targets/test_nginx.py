"""`homeport render --target nginx`: files nginx itself accepts and serves as rendered.

Here without homeservers running: `nginx -t` on several models (nginx loads
every certificate and the trust bundle), and a live nginx for what it answers
alone (well-knowns, unknown names, admin paths). Federation through it is
tests/e2e/test_proxy.py.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from homeport import pki
from homeport.config.loader import load_deployment
from homeport.homeserver.routing import route, routes
from homeport.targets.nginx import json_body, nginx_string
from homeport.trust import client_ssl_context
from tests.harness import edit_yaml, free_port_run, homeport, init_deployment
from tests.nginx import check_config, main_config, running_nginx

PROXY = "127.10.0.1"


def _render(directory: Path, edit: Callable[[Any], None]) -> tuple[Path, Path]:
    """A starter edited by `edit`, rendered; (homeport.yaml, nginx's main file)."""
    config = init_deployment(directory)
    edit_yaml(config, edit)
    rendered = directory / "nginx"
    homeport("render", "-c", str(config), "--target", "nginx", "--out", str(rendered))
    run = directory / "nginx-run"
    run.mkdir()
    return config, main_config(run, rendered / "homeport.conf")


def _named(port: int) -> Callable[[Any], None]:
    def edit(data: Any) -> None:
        data["homeservers"]["internal"]["server_name"] = "internal.homeport.test"
        data["homeservers"]["external"]["server_name"] = "external.homeport.test"
        data["homeservers"]["external"]["public_host"] = "matrix-external.homeport.test"
        data["admin"]["host"] = "admin.homeport.test"
        data["conference"]["host"] = "meet.homeport.test"
        data["proxy"] = {"address": PROXY, "port": port}

    return edit


def test_without_a_proxy_section_it_says_what_to_add(tmp_path: Path) -> None:
    config = init_deployment(tmp_path)
    result = homeport(
        "render", "-c", str(config), "--target", "nginx", "--out", str(tmp_path / "n"), check=False
    )
    assert result.returncode != 0
    assert "has no `proxy:` section" in result.stderr + result.stdout
    assert not (tmp_path / "n").exists()


def test_nginx_accepts_every_host_on_all_addresses_with_certificates_of_your_own(
    tmp_path: Path,
) -> None:
    corp = tmp_path / "corp"
    ca, _ = pki.ensure_ca(corp / "ca.crt", corp / "ca.key", "Corp", ["example.org"])
    pki.ensure_leaf(ca, "meet.example.org", corp / "meet.crt", corp / "meet.key")

    def production(data: Any) -> None:
        internal = data["homeservers"]["internal"]
        internal["server_name"] = "internal.example.org"
        external = data["homeservers"]["external"]
        external["server_name"] = "example.org"
        external["public_host"] = "matrix.example.org"
        # One certificate for the server name's host and the host serving it.
        _two_name_certificate(ca, corp / "both.crt", corp / "both.key")
        external["tls"] = {"certificate": str(corp / "both.crt"), "key": str(corp / "both.key")}
        data["trusted_ca_files"] = [str(corp / "ca.crt")]
        data["admin"]["host"] = "admin.example.org"
        data["conference"]["host"] = "meet.example.org"
        data["conference"]["tls"] = {
            "certificate": str(corp / "meet.crt"),
            "key": str(corp / "meet.key"),
        }
        data["proxy"] = {"admin_from": ["10.0.0.0/8"]}  # every address, port 443

    config, nginx_config = _render(tmp_path, production)
    checked = check_config(nginx_config)
    assert checked.returncode == 0, checked.stderr
    text = (tmp_path / "nginx" / "homeport.conf").read_text()
    assert "listen 443 ssl http2;" in text
    assert "listen [::]:443 ssl http2;" in text
    assert f"ssl_certificate {corp / 'both.crt'};" in text
    assert f"ssl_certificate {corp / 'meet.crt'};" in text
    assert "allow 10.0.0.0/8;" in text
    jitsi = (tmp_path / "nginx" / "jitsi-well-known.conf").read_text()
    assert "location = /.well-known/element/jitsi" in jitsi
    # The upstream trust holds the organisation's CA: nginx checks the conference
    # service's own certificate against it.
    trust = (tmp_path / "nginx" / "upstream-ca.pem").read_text()
    assert (corp / "ca.crt").read_text() in trust
    deployment, _ = load_deployment(config)
    assert deployment.homeservers["external"].base_url == "https://matrix.example.org"


def _two_name_certificate(ca: pki.CertificateAuthority, cert: Path, key: Path) -> None:
    """A leaf for example.org and matrix.example.org (the local CA issues one name each)."""
    private = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names = [x509.DNSName("example.org"), x509.DNSName("matrix.example.org")]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.org")]))
        .issuer_name(ca.certificate.subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def test_strings_reach_nginx_as_written() -> None:
    assert nginx_string("it's a \\ test") == "'it\\'s a \\\\ test'"
    body = json_body({"m.homeserver": {"base_url": "https://x/$host'"}})
    assert "$" not in body  # never an nginx variable
    assert "\\\\u0024" in body


async def test_a_live_nginx_answers_what_it_serves_itself(tmp_path: Path) -> None:
    port = free_port_run(1)
    weird = "https://matrix-external.homeport.test/we$ird'path"

    def edit(data: Any) -> None:
        _named(port)(data)
        data["homeservers"]["external"]["public_baseurl"] = weird

    config, nginx_config = _render(tmp_path, edit)
    trust = client_ssl_context(load_deployment(config)[0])
    with running_nginx(nginx_config, PROXY, port):
        async with httpx.AsyncClient(verify=trust) as http:
            base = f"https://external.homeport.test:{port}"
            server = await http.get(f"{base}/.well-known/matrix/server")
            assert server.json() == {"m.server": f"matrix-external.homeport.test:{port}"}
            client = await http.get(f"{base}/.well-known/matrix/client")
            assert client.json() == {"m.homeserver": {"base_url": weird + "/"}}
            with pytest.raises(httpx.ConnectError):
                await http.get(
                    f"https://{PROXY}:{port}/", extensions={"sni_hostname": "nobody.example"}
                )
        # The homeservers are not running: nginx passes allowed requests on and
        # says 502; the admin paths it refuses to other addresses before trying.
        local = f"https://internal.homeport.test:{port}"
        inside = httpx.AsyncHTTPTransport(local_address="127.0.0.1", verify=trust)
        outside = httpx.AsyncHTTPTransport(local_address="127.0.0.2", verify=trust)
        async with (
            httpx.AsyncClient(transport=inside) as allowed,
            httpx.AsyncClient(transport=outside) as other,
        ):
            for path in ("/_matrix/client/versions", "/_synapse/admin/v1/server_version"):
                assert (await allowed.get(local + path)).status_code == 502
            assert (await other.get(f"{local}/_matrix/client/versions")).status_code == 502
            for path in ("/_synapse/admin/v1/server_version", "/_homeport/v1/delivery"):
                refused = await other.get(local + path)
                assert refused.status_code == 403
                assert "<center>nginx</center>" in refused.text


def test_a_homeserver_s_workers_get_the_requests_synapse_lets_them_serve(tmp_path: Path) -> None:
    """nginx accepts the worker locations, and they route as Homeport's table says."""
    base = free_port_run(1)

    def workers(data: Any) -> None:
        _named(free_port_run(1))(data)
        internal = data["homeservers"]["internal"]
        internal["database"] = "postgresql://synapse@127.0.0.1:5432/not_connected_by_render"
        internal["workers"] = {"generic": 2, "media": 1, "federation_senders": 1}
        internal["workers"]["port_base"] = base
        data["redis"] = {"url": "redis://127.0.0.1:6379"}

    _, main = _render(tmp_path, workers)
    checked = check_config(main)
    assert checked.returncode == 0, checked.stderr
    text = (tmp_path / "nginx" / "homeport.conf").read_text()
    generic = re.search(r"upstream homeport_internal_generic \{(.*?)\}", text, re.S)
    assert generic is not None
    assert generic.group(1).count("server 127.0.0.1:") == 2
    assert "hash $homeport_affinity consistent;" in generic.group(1)
    assert "upstream homeport_external_generic" not in text  # external has no workers

    located = re.findall(r'location ~ "(.*?)" \{\s*proxy_pass https://(\S+);', text)
    assert {target for _, target in located} == {
        "homeport_internal_media",
        "homeport_internal_generic",
        "$homeport_internal_get",
    }

    def nginx_route(method: str, path: str) -> str:
        for pattern, target in located:
            if re.search(pattern, path):
                if target == "$homeport_internal_get":
                    return "generic" if method in ("GET", "HEAD") else "main"
                return target.removeprefix("homeport_internal_")
        return "main"

    table = routes(generic=True, media=True)
    samples = [
        ("GET", "/_matrix/client/v3/sync"),
        ("PUT", "/_matrix/federation/v1/send/1"),
        ("GET", "/_matrix/client/v3/pushrules/"),
        ("DELETE", "/_matrix/client/v3/pushrules/global/override/x"),
        ("POST", "/_matrix/media/v3/upload"),
        ("GET", "/_synapse/admin/v1/media/x/y"),
        ("GET", "/_synapse/admin/v1/users/@a:x/media"),
        ("GET", "/_synapse/admin/v1/registration_tokens"),
        ("GET", "/_matrix/client/v3/rooms/!r:x/messages"),
        ("POST", "/_matrix/client/v3/createRoom"),
    ]
    for method, path in samples:
        assert nginx_route(method, path) == route(table, method, path), (method, path)
