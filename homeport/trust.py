"""The TLS trust Homeport itself uses to talk to its homeservers: verification always on."""

from __future__ import annotations

import ssl

from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout


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
