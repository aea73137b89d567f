"""What every manifest of one homeserver's namespace is rendered from. Pure.

The model, the inputs gathered on this machine, and what follows from them
once: the namespace, Synapse's homeserver.yaml for the pod and the parts of
it that go to the Secret, Homeport's roles that run beside this homeserver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.kubernetes import Kubernetes
from homeport.targets import k8s
from homeport.targets.cluster import Role, namespace_of, roles
from homeport.targets.kubernetes_pods import ClusterInputs, HomeportPods, HomeserverSecrets
from homeport.targets.kubernetes_synapse_config import synapse_settings


@dataclass(frozen=True)
class HomeserverNamespace:
    """One homeserver's namespace: a kustomize base of its own."""

    deployment: Deployment
    kube: Kubernetes
    name: str
    hs: Homeserver
    namespace: str
    inputs: ClusterInputs
    config: dict[str, Any]  # Synapse's homeserver.yaml in the pod (the ConfigMap's)
    secret_files: dict[str, dict[str, Any]]  # its parts that hold passwords (the Secret's)
    roles: list[Role]  # Homeport's roles that run in this namespace
    pods: HomeportPods

    @property
    def secrets(self) -> HomeserverSecrets:
        return self.inputs.homeservers[self.name]

    @property
    def bundled_postgres(self) -> bool:
        return self.hs.database == "sqlite" and self.kube.bundled_postgres

    @property
    def has_workers(self) -> bool:
        return bool(self.hs.workers.count)

    @property
    def beside_synapse(self) -> list[Role]:
        """Homeport's processes that run as containers of Synapse's pod."""
        return [r for r in self.roles if r.process is not None and r.process.beside_synapse]

    def labels(self, component: str) -> dict[str, str]:
        return k8s.labels(self.name, component)

    def hosts(self) -> dict[str, str]:
        """Each host of the Ingress and the Secret holding its certificate."""
        hosts = {self.hs.served_host: "synapse-tls"}
        if self.hs.tls_name != self.hs.served_host:
            hosts[self.hs.tls_name] = "synapse-tls-server-name"
        return hosts


def homeserver_namespace(
    deployment: Deployment, name: str, inputs: ClusterInputs
) -> HomeserverNamespace:
    assert deployment.kubernetes is not None
    kube = deployment.kubernetes
    namespace = namespace_of(kube, name)
    secrets = inputs.homeservers[name]
    config, secret_files = synapse_settings(
        deployment, name, kube, secrets.postgres_password, secrets.redis_password
    )
    return HomeserverNamespace(
        deployment=deployment,
        kube=kube,
        name=name,
        hs=deployment.homeservers[name],
        namespace=namespace,
        inputs=inputs,
        config=config,
        secret_files=secret_files,
        roles=[r for r in roles(deployment) if r.homeserver == name],
        pods=HomeportPods(deployment, inputs, namespace),
    )
