"""The cluster's Ingress controller, stood in for by Debian's nginx on the host: pure.

The manifests' Ingress objects say which host and path go to which Service,
with which certificate; ingress-nginx's annotations that Homeport sets say the
rest (an HTTPS backend verified against a CA Secret, allowed source ranges,
body size, read timeout). `server_blocks` turns them into nginx's words, for
nginx listening where the pods reach it (their network's gateway, port 443).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.containers.kube import Document, Manifests, Unsupported

PREFIX = "nginx.ingress.kubernetes.io/"


@dataclass(frozen=True)
class IngressFile:
    path: str
    content: bytes


def _annotation(ingress: Document, name: str, default: str | None = None) -> str | None:
    value = (ingress["metadata"].get("annotations") or {}).get(PREFIX + name, default)
    return None if value is None else str(value)


def server_blocks(
    manifests: Manifests, service_ips: Mapping[str, str], listen: str, folder: str
) -> tuple[str, list[IngressFile]]:
    """nginx `server` blocks for every Ingress, and the certificate files they name
    (in `folder`). `service_ips`: "namespace/service" to the address of its pod."""
    files: list[IngressFile] = []
    blocks: list[str] = []
    for ingress in manifests.of_kind("Ingress"):
        meta = ingress["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        tls_for: dict[str, str] = {}
        for tls in ingress["spec"].get("tls", []):
            for host in tls["hosts"]:
                tls_for[host] = tls["secretName"]
        backend_scheme = (_annotation(ingress, "backend-protocol", "HTTP") or "HTTP").lower()
        upstream_lines: list[str] = []
        if backend_scheme == "https" and _annotation(ingress, "proxy-ssl-verify") == "on":
            secret_ref = _annotation(ingress, "proxy-ssl-secret") or ""
            ca_namespace, ca_name = secret_ref.split("/")
            ca_path = f"{folder}/{namespace}-{name}-upstream-ca.crt"
            files.append(IngressFile(ca_path, manifests.secret(ca_namespace, ca_name)["ca.crt"]))
            upstream_lines += [
                "proxy_ssl_verify on;",
                f"proxy_ssl_trusted_certificate {ca_path};",
                f"proxy_ssl_name {_annotation(ingress, 'proxy-ssl-name')};",
                "proxy_ssl_server_name on;",
            ]
        allowed = _annotation(ingress, "whitelist-source-range")
        access = (
            [f"allow {cidr.strip()};" for cidr in allowed.split(",")] + ["deny all;"]
            if allowed
            else []
        )
        body = _annotation(ingress, "proxy-body-size", "1m")
        read_timeout = _annotation(ingress, "proxy-read-timeout", "60")
        for rule in ingress["spec"]["rules"]:
            host = rule["host"]
            if host not in tls_for:
                raise Unsupported(f"Ingress {namespace}/{name}: {host} without TLS")
            secret = manifests.secret(namespace, tls_for[host])
            cert = f"{folder}/{namespace}-{tls_for[host]}.crt"
            key = f"{folder}/{namespace}-{tls_for[host]}.key"
            files += [IngressFile(cert, secret["tls.crt"]), IngressFile(key, secret["tls.key"])]
            locations = []
            for path in rule["http"]["paths"]:
                service = path["backend"]["service"]
                ip = service_ips[f"{namespace}/{service['name']}"]
                port = service["port"]["number"]
                exact = "= " if path.get("pathType") == "Exact" else ""
                locations.append(
                    f"    location {exact}{path['path']} {{\n"
                    + "".join(f"      {line}\n" for line in access)
                    + f"      proxy_pass {backend_scheme}://{ip}:{port};\n"
                    + "".join(f"      {line}\n" for line in upstream_lines)
                    + "      proxy_set_header Host $host;\n"
                    "      proxy_set_header X-Forwarded-For $remote_addr;\n"
                    "      proxy_set_header X-Forwarded-Proto https;\n"
                    "      proxy_set_header X-Real-IP $remote_addr;\n"
                    "      proxy_http_version 1.1;\n"
                    f"      proxy_read_timeout {read_timeout}s;\n"
                    "    }\n"
                )
            blocks.append(
                "  server {\n"
                f"    listen {listen}:443 ssl;\n"
                f"    server_name {host};\n"
                f"    ssl_certificate {cert};\n"
                f"    ssl_certificate_key {key};\n"
                f"    client_max_body_size {body};\n" + "".join(locations) + "  }\n"
            )
    return "".join(blocks), files


def write(folder: Path, blocks: str, files: list[IngressFile]) -> Path:
    """The include file and the certificates its blocks name, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        target = Path(file.path)
        target.write_bytes(file.content)
        target.chmod(0o600)
    include = folder / "ingress.conf"
    include.write_text(blocks)
    return include
