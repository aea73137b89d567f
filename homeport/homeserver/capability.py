"""The homeservers themselves and their Synapse workers, as capabilities: the first
services `up` starts, each homeserver's main process before its workers."""

from __future__ import annotations

from homeport.capability import Capability, ServiceContext
from homeport.config.deployment import Deployment
from homeport.supervision.service import Service


class Homeservers(Capability):
    name = "homeservers"

    def services(self, deployment: Deployment, context: ServiceContext) -> list[Service]:
        from homeport.homeserver.process import SynapseService

        return [
            SynapseService(name, hs, context.layout.homeserver(name), context.ssl_context)
            for name, hs in deployment.homeservers.items()
        ]


class Workers(Capability):
    name = "workers"

    def services(self, deployment: Deployment, context: ServiceContext) -> list[Service]:
        from homeport.homeserver.worker_process import WorkerService

        return [
            WorkerService(name, hs, spec, context.layout.homeserver(name), context.ssl_context)
            for name, hs in deployment.homeservers.items()
            for spec in hs.workers.specs()
        ]


HOMESERVERS = Homeservers()
WORKERS = Workers()
