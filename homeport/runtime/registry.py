"""Which services a deployment runs: every registered capability's, in registry order.

Each capability reads the model and returns the services it needs; one that is
not configured returns none (`homeport.capabilities`). Homeport's own Python
services share one host process (`homeport.supervision.host`).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from homeport.capabilities import CAPABILITIES
from homeport.capability import ServiceContext
from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.runtime.nginx_service import NginxService
from homeport.supervision.host import ServiceHost
from homeport.supervision.service import Service


def service_context(
    config_path: Path, layout: DeploymentLayout, ssl_context: ssl.SSLContext
) -> ServiceContext:
    host = ServiceHost(config_path, layout.data_dir, layout.host_console)
    return ServiceContext(config_path, layout, ssl_context, host)


def proxy(deployment: Deployment, context: ServiceContext) -> list[Service]:
    """nginx in front, when `up` runs it (`proxy.managed`)."""
    if deployment.proxy is None or not deployment.proxy.managed:
        return []
    return [NginxService(deployment, context.layout)]


def services(deployment: Deployment, context: ServiceContext) -> list[Service]:
    registered = [
        s for capability in CAPABILITIES for s in capability.services(deployment, context)
    ]
    return registered + proxy(deployment, context)
