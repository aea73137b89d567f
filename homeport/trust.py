"""The TLS trust Homeport itself uses to talk to its homeservers: verification always on."""

from __future__ import annotations

import ssl
from pathlib import Path

from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout

SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def client_ssl_context(deployment: Deployment) -> ssl.SSLContext:
    """Trust the local CA and the extra CAs of the file; the system store too when a
    homeserver brings its own certificate (which a public CA may have issued)."""
    layout = DeploymentLayout(deployment.data_dir)
    context = ssl.create_default_context(cafile=str(layout.ca_certificate))
    for extra in deployment.trusted_ca_files:
        context.load_verify_locations(cafile=str(extra))
    if any(hs.tls for hs in deployment.homeservers.values()):
        context.load_default_certs()
    return context


def upstream_trust(deployment: Deployment, layout: DeploymentLayout) -> str:
    """What nginx trusts for Homeport's own listeners: the local CA, the extra CAs, and
    the system's CAs when a listener shows a certificate of your own."""
    parts = [layout.ca_certificate.read_text()]
    parts += [path.read_text() for path in deployment.trusted_ca_files]
    own = any(hs.tls for hs in deployment.homeservers.values()) or (
        deployment.conference is not None and deployment.conference.tls is not None
    )
    if own and SYSTEM_CA_BUNDLE.is_file():
        parts.append(SYSTEM_CA_BUNDLE.read_text())
    return "".join(part if part.endswith("\n") else part + "\n" for part in parts)
