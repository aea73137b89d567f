"""nginx in front of the deployment: every host on one port (443), chosen by SNI.

What it serves, per homeserver, on its public host (`public_host`, else the
server name's host):

- `/_matrix/` and `/_synapse/client/` to that homeserver's own listener;
- `/_synapse/admin` and `/_homeport/` only to `proxy.admin_from` (403 for
  everyone else), so the admin API is never on the Internet;
- `/.well-known/matrix/server` (`<public host>:<proxy port>`: a server name
  without a port federates through the proxy) and `/.well-known/matrix/client`,
  with CORS, also on the server name's host when the APIs live elsewhere.

The admin website (only to `admin_from`) and the conference service get a host
each. An unknown host name gets no TLS handshake at all. Upstreams are
Homeport's own HTTPS listeners, verified against `upstream-ca.pem`.

Pure: the model (absolute paths, as the loader makes them), the layout, where
the files will live and the upstream trust bundle in; file names and texts out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeport.capabilities import synapse_pieces
from homeport.capability import ClusterWeb
from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.proxy import Proxy
from homeport.config.types import connect_address, size_bytes
from homeport.homeserver.routing import Route, routes
from homeport.layout import DeploymentLayout
from homeport.targets.cluster import roles

CONFIG = "homeport.conf"
WORKER_ADDRESS = "127.0.0.1"  # workers listen on loopback (homeport.homeserver.workers)
UPSTREAM_CA = "upstream-ca.pem"
JITSI_SNIPPET = "jitsi-well-known.conf"
SYNAPSE_MAX_UPLOAD = "50M"  # Synapse's default `max_upload_size`
# Mozilla's "intermediate" TLS profile (TLS 1.2 ciphers; 1.3 chooses its own).
CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


@dataclass(frozen=True)
class Upstream:
    """One of Homeport's HTTPS listeners, as nginx reaches and checks it."""

    name: str
    address: str
    port: int
    tls_name: str

    @property
    def server(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def nginx_string(text: str) -> str:
    """`text` as one single-quoted nginx string: no variables, quotes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def json_body(document: dict[str, Any]) -> str:
    """JSON for `return 200 ...`: `$` (an nginx variable) written as a JSON escape."""
    text = json.dumps(document, ensure_ascii=True, separators=(",", ":"))
    return nginx_string(text).replace("$", "\\\\u0024")


def max_upload_bytes(hs: Homeserver) -> int:
    """Synapse's `max_upload_size` (passthrough, else its default) in bytes."""
    value = hs.synapse.get("max_upload_size", SYNAPSE_MAX_UPLOAD)
    return value if isinstance(value, int) else size_bytes(str(value))


def well_known_client(
    deployment: Deployment, name: str, layout: DeploymentLayout
) -> dict[str, Any]:
    """What clients read to find the homeserver, and what the capabilities add to it in
    Synapse's own (`extra_well_known_client_content`: Element Call's LiveKit service)."""
    hs = deployment.homeservers[name]
    document: dict[str, Any] = {"m.homeserver": {"base_url": hs.base_url + "/"}}
    pieces = synapse_pieces(deployment, name, layout)
    document.update(pieces.settings.get("extra_well_known_client_content", {}))
    return document


class _Writer:
    """Indented nginx configuration, block by block."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._depth = 0

    def line(self, text: str = "") -> None:
        self.lines.append("    " * self._depth + text if text else "")

    def open(self, head: str) -> None:
        self.line(head + " {")
        self._depth += 1

    def close(self) -> None:
        self._depth -= 1
        self.line("}")


def _listen(proxy: Proxy, extra: str = "") -> list[str]:
    suffix = f" ssl http2{extra}"
    if proxy.address is None:
        return [f"listen {proxy.port}{suffix};", f"listen [::]:{proxy.port}{suffix};"]
    address = f"[{proxy.address}]" if ":" in proxy.address else proxy.address
    return [f"listen {address}:{proxy.port}{suffix};"]


class _Renderer:
    def __init__(self, deployment: Deployment, layout: DeploymentLayout, out_dir: Path) -> None:
        assert deployment.proxy is not None
        self.deployment = deployment
        self.proxy = deployment.proxy
        self.layout = layout
        self.trust = out_dir / UPSTREAM_CA
        self.w = _Writer()

    def headers(self) -> None:
        """Set in every block that adds headers: nginx does not inherit them then."""
        if self.proxy.hsts_max_age:
            self.w.line(
                f'add_header Strict-Transport-Security "max-age={self.proxy.hsts_max_age}" always;'
            )
        self.w.line('add_header X-Content-Type-Options "nosniff" always;')

    def server_head(self, host: str, certificate: Path, key: Path) -> None:
        self.w.open("server")
        for listen in _listen(self.proxy):
            self.w.line(listen)
        self.w.line(f"server_name {host};")
        self.w.line("server_tokens off;")
        self.w.line(f"ssl_certificate {certificate};")
        self.w.line(f"ssl_certificate_key {key};")
        self.w.line("ssl_protocols TLSv1.2 TLSv1.3;")
        self.w.line(f"ssl_ciphers {CIPHERS};")
        self.w.line("ssl_prefer_server_ciphers off;")
        self.w.line("ssl_session_cache shared:homeport_tls:10m;")
        self.w.line("ssl_session_timeout 1d;")
        self.w.line("ssl_session_tickets off;")
        self.headers()

    def allow_admins(self) -> None:
        for network in self.proxy.admin_from:
            self.w.line(f"allow {network};")
        self.w.line("deny all;")

    def to_upstream(self, upstream: Upstream, timeout: str = "60s") -> None:
        """Pass the request on (how: `upstream_settings`, set once per server)."""
        self.w.line(f"proxy_pass https://{upstream.name};")
        self.w.line(f"proxy_read_timeout {timeout};")

    def upstream_settings(self, upstream: Upstream) -> None:
        """Over verified TLS, with the client's address; locations inherit these."""
        w = self.w
        w.line("proxy_http_version 1.1;")
        w.line('proxy_set_header Connection "";')
        w.line("proxy_set_header Host $host;")
        # Replaced, never appended: a client cannot slip in an address of its choosing.
        w.line("proxy_set_header X-Forwarded-For $remote_addr;")
        w.line("proxy_set_header X-Forwarded-Proto https;")
        w.line("proxy_ssl_verify on;")
        w.line("proxy_ssl_verify_depth 3;")
        w.line(f"proxy_ssl_trusted_certificate {self.trust};")
        w.line(f"proxy_ssl_name {upstream.tls_name};")
        w.line("proxy_ssl_server_name on;")
        w.line("proxy_ssl_session_reuse on;")

    def static_json(self, path: str, document: dict[str, Any]) -> None:
        w = self.w
        w.open(f"location = {path}")
        self.headers()
        w.line('add_header Access-Control-Allow-Origin "*" always;')
        w.line('add_header Access-Control-Allow-Methods "GET, OPTIONS" always;')
        w.line(
            'add_header Access-Control-Allow-Headers "X-Requested-With, Content-Type, '
            'Authorization" always;'
        )
        w.line("default_type application/json;")
        w.line(f"return 200 {json_body(document)};")
        w.close()

    def well_knowns(self, name: str, hs: Homeserver) -> None:
        delegated = f"{hs.served_host}:{self.proxy.port}"
        self.static_json("/.well-known/matrix/server", {"m.server": delegated})
        document = well_known_client(self.deployment, name, self.layout)
        self.static_json("/.well-known/matrix/client", document)

    def upstream(self, upstream: Upstream) -> None:
        self.w.open(f"upstream {upstream.name}")
        self.w.line(f"server {upstream.server};")
        self.w.line("keepalive 16;")
        self.w.close()
        self.w.line()

    def worker_upstreams(self, name: str, hs: Homeserver) -> list[tuple[Route, str]]:
        """Upstreams of its generic and media workers; each route with where it goes."""
        specs = hs.workers.specs()
        table = routes(
            generic=any(s.kind == "generic" for s in specs),
            media=any(s.kind == "media" for s in specs),
        )
        for kind, balance in (
            ("generic", "hash $homeport_affinity consistent"),
            ("media", "least_conn"),
        ):
            servers = [s for s in specs if s.kind == kind]
            if not servers:
                continue
            self.w.open(f"upstream homeport_{name}_{kind}")
            self.w.line(f"{balance};")
            for spec in servers:
                self.w.line(f"server {WORKER_ADDRESS}:{spec.port};")
            self.w.line("keepalive 16;")
            self.w.close()
            self.w.line()
        if any(route.get_only for route in table):
            # GET-only endpoints: their other methods stay with the main process.
            self.w.open(f"map $request_method $homeport_{name}_get")
            self.w.line(f"GET homeport_{name}_generic;")
            self.w.line(f"HEAD homeport_{name}_generic;")
            self.w.line(f"default homeport_{name};")
            self.w.close()
            self.w.line()
        return [(route, self._target(name, route)) for route in table]

    @staticmethod
    def _target(name: str, route: Route) -> str:
        if route.get_only:
            return f"$homeport_{name}_get"
        return f"homeport_{name}_{route.target}"

    def worker_locations(self, routed: list[tuple[Route, str]], prefix: str) -> None:
        """Nested regex locations, tried in order (media first), one per destination."""
        groups: dict[str, list[str]] = {}
        for route, target in routed:
            if route.pattern.startswith(f"^{prefix}"):
                groups.setdefault(target, []).append(route.pattern)
        for target, patterns in groups.items():
            self.w.open(f'location ~ "{"|".join(patterns)}"')
            self.w.line(f"proxy_pass https://{target};")
            self.w.line("proxy_read_timeout 120s;")
            self.w.close()

    def homeserver(self, name: str, hs: Homeserver) -> None:
        upstream = Upstream(f"homeport_{name}", hs.local_address, hs.port, hs.tls_name)
        self.upstream(upstream)
        routed = self.worker_upstreams(name, hs)
        files = self.layout.homeserver(name)
        own = hs.tls
        separate = hs.served_host != hs.tls_name
        if own is not None:
            certificate, key = own.certificate, own.key
        elif separate:
            certificate, key = files.public_tls_certificate, files.public_tls_key
        else:
            certificate, key = files.tls_certificate, files.tls_key
        w = self.w
        w.line(f"# Homeserver {name}: {hs.server_name}, served on {hs.served_host}")
        self.server_head(hs.served_host, certificate, key)
        self.upstream_settings(upstream)
        w.line(f"client_max_body_size {max_upload_bytes(hs)};")
        self.well_knowns(name, hs)
        for prefix in ("/_synapse/admin", "/_homeport/"):
            w.open(f"location ^~ {prefix}")
            self.allow_admins()
            self.worker_locations(routed, prefix)
            self.to_upstream(upstream)
            w.close()
        w.open("location ^~ /_matrix/")
        self.worker_locations(routed, "/_matrix/")
        self.to_upstream(upstream, timeout="120s")  # /sync holds requests open
        w.close()
        w.open("location ^~ /_synapse/client/")
        self.to_upstream(upstream)
        w.close()
        w.open("location /")
        w.line("return 404;")
        w.close()
        w.close()
        w.line()
        if separate:
            # The server name's own host answers the well-knowns: delegation.
            if own is None:
                certificate, key = files.tls_certificate, files.tls_key
            w.line(f"# Delegation of {hs.server_name} to {hs.served_host}")
            self.server_head(hs.tls_name, certificate, key)
            self.well_knowns(name, hs)
            w.open("location /")
            w.line("return 404;")
            w.close()
            w.close()
            w.line()

    def web_service(self, name: str, web: ClusterWeb) -> None:
        """A capability's own HTTPS service on its host: its admin paths to administrators'
        addresses only, its open paths to anyone."""
        upstream = Upstream(f"homeport_{name}", connect_address(web.address), web.port, web.host)
        self.upstream(upstream)
        self.w.line(f"# {web.description}")
        self.server_head(web.host, web.certificate, web.key)
        self.upstream_settings(upstream)
        self.w.line("client_max_body_size 64k;")
        for path in web.admin_paths:
            self.w.open("location /" if path == "/" else f"location = {path}")
            self.allow_admins()
            self.to_upstream(upstream)
            self.w.close()
        for path in web.open_paths:
            self.w.open("location /" if path == "/" else f"location = {path}")
            self.to_upstream(upstream)
            self.w.close()
        self.w.close()
        self.w.line()

    def reject_unknown_hosts(self) -> None:
        """A host name we do not serve gets no handshake (and no certificate to read)."""
        self.w.line("# Any other host name: no TLS handshake")
        self.w.open("server")
        for listen in _listen(self.proxy, " default_server"):
            self.w.line(listen)
        self.w.line("ssl_reject_handshake on;")
        self.w.close()
        self.w.line()

    def affinity(self) -> None:
        """Which generic worker: by origin server (federation) or access token (clients)."""
        self.w.open("map $http_authorization $homeport_affinity")
        self.w.line('"~*^X-Matrix .*origin=\\"?(?<homeport_origin>[^\\",]+)" $homeport_origin;')
        self.w.line('"~^Bearer (?<homeport_token>.+)$" $homeport_token;')
        self.w.line("default $remote_addr;")
        self.w.close()
        self.w.line()

    def render(self) -> str:
        self.w.line("# Rendered by Homeport from homeport.yaml: `homeport render --target nginx`.")
        self.w.line("# Include it in nginx's http block (Debian: /etc/nginx/conf.d/).")
        self.w.line()
        if any(hs.workers.generic for hs in self.deployment.homeservers.values()):
            self.affinity()
        self.reject_unknown_hosts()
        for name, hs in self.deployment.homeservers.items():
            self.homeserver(name, hs)
        for role in roles(self.deployment):
            if role.web is not None:
                self.web_service(role.name, role.web)
        return "\n".join(self.w.lines).rstrip() + "\n"


def jitsi_snippet(deployment: Deployment, upstream_trust: Path) -> str:
    """A location for Jitsi's own site: Element reads the well-known there."""
    conference = deployment.conference
    assert conference is not None
    assert conference.jitsi is not None
    address = connect_address(conference.address)
    host = f"[{address}]" if ":" in address else address
    return "\n".join(
        [
            "# Rendered by Homeport: include in the server block of "
            f"{conference.jitsi.domain} (Jitsi Meet's site).",
            "location = /.well-known/element/jitsi {",
            f"    proxy_pass https://{host}:{conference.port};",
            "    proxy_ssl_verify on;",
            f"    proxy_ssl_trusted_certificate {upstream_trust};",
            f"    proxy_ssl_name {conference.host};",
            "    proxy_ssl_server_name on;",
            "}",
            "",
        ]
    )


def main_config(run_dir: Path, include: Path, as_root: bool) -> str:
    """nginx's own main file around `homeport.conf`, for an nginx that `up` runs: its pid,
    logs and temporary folders in `run_dir` (nothing of the system's nginx is touched).

    Started by root (a port below 1024), nginx would hand its workers to
    `nobody`, who cannot read the data folder's keys: they stay with root.
    """
    user = "user root root;" if as_root else ""
    temp = "\n".join(
        f"    {kind}_temp_path {run_dir / 'temp' / folder};"
        for kind, folder in (
            ("client_body", "body"),
            ("proxy", "proxy"),
            ("fastcgi", "fastcgi"),
            ("uwsgi", "uwsgi"),
            ("scgi", "scgi"),
        )
    )
    return f"""# Rendered by Homeport for the nginx `homeport up` runs (proxy.managed).
worker_processes 1;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log info;
{user}
events {{ worker_connections 1024; }}
http {{
    log_format hosts '$remote_addr $host "$request" $status $upstream_addr';
    access_log {run_dir}/access.log hosts;
{temp}
    include {include};
}}
"""


def render_nginx(
    deployment: Deployment, layout: DeploymentLayout, out_dir: Path, upstream_trust: str
) -> dict[str, str]:
    """`homeport.conf`, the upstream trust bundle, and Jitsi's well-known snippet."""
    files = {
        CONFIG: _Renderer(deployment, layout, out_dir).render(),
        UPSTREAM_CA: upstream_trust,
    }
    conference = deployment.conference
    if conference is not None and conference.jitsi is not None:
        files[JITSI_SNIPPET] = jitsi_snippet(deployment, out_dir / UPSTREAM_CA)
    return files
