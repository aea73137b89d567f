"""The namespace of Homeport's services that span homeservers, and of its store. Pure.

The capabilities' web services, as each declares them (`ClusterWeb`: the admin
website and the conference service), as Deployments behind Ingresses (TLS to
the pod checked against the local CA, their admin paths only from
`admin_from`), and Homeport's store as a bundled PostgreSQL when homeport.yaml
keeps it on SQLite: pods in several namespaces share it.
"""

from __future__ import annotations

from typing import Any

from homeport.capability import ClusterWeb
from homeport.config.deployment import Deployment
from homeport.config.kubernetes import Kubernetes
from homeport.config.proxy import DEFAULT_ADMIN_FROM
from homeport.layout import DeploymentLayout
from homeport.targets import k8s
from homeport.targets.cluster import CONFIG, Role, roles, services_namespace
from homeport.targets.kubernetes_pods import (
    ClusterInputs,
    HomeportPods,
    kustomization,
    tls_secret,
)
from homeport.targets.kubernetes_processes import process_container


class Services:
    """The namespace of the services that span homeservers, and of the store."""

    INSTANCE = "services"

    def __init__(self, deployment: Deployment, inputs: ClusterInputs) -> None:
        assert deployment.kubernetes is not None
        self.deployment = deployment
        self.kube = deployment.kubernetes
        self.inputs = inputs
        self.ns = services_namespace(self.kube)
        self.roles = [r for r in roles(deployment) if r.homeserver is None]
        self.pods = HomeportPods(deployment, inputs, self.ns)
        self.bundled_store = deployment.store.database == "sqlite"
        self.layout = DeploymentLayout(deployment.data_dir)

    def needed(self) -> bool:
        return bool(self.roles) or (self.bundled_store and bool(roles(self.deployment)))

    @staticmethod
    def _web(role: Role) -> ClusterWeb:
        assert role.web is not None, f"{role.name} serves no website"
        return role.web

    def web_deployment(self, role: Role) -> dict[str, Any]:
        name, web = role.name, self._web(role)
        port = web.port
        # It serves HTTPS itself; kubelet's probes do not check the certificate.
        probe = {
            "httpGet": {"path": "/health", "port": port, "scheme": "HTTPS"},
            "periodSeconds": 10,
        }
        container = self.pods.container(
            name,
            [str(CONFIG) if arg == "{config}" else arg for arg in web.command],
            [role],
            {
                "ports": [{"name": "https", "containerPort": port}],
                "readinessProbe": probe,
                "livenessProbe": {**probe, "failureThreshold": 6},
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"memory": "1Gi"},
                },
            },
        )
        return self.pods.deployment_object(name, self.INSTANCE, [container], [role])

    def web_ingresses(self, role: Role) -> list[dict[str, Any]]:
        """Its host on 443: its open paths from anywhere, its admin paths only from
        admin_from (the website; the conference service's /metrics)."""
        name, web = role.name, self._web(role)
        port, host = web.port, web.host
        proxy = self.deployment.proxy
        admin_from = ",".join(proxy.admin_from if proxy is not None else DEFAULT_ADMIN_FROM)
        base = {
            "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
            # The pod's certificate is checked, as nginx checks it on one machine.
            "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
            "nginx.ingress.kubernetes.io/proxy-ssl-secret": f"{self.ns}/upstream-ca",
            "nginx.ingress.kubernetes.io/proxy-ssl-name": host,
            "nginx.ingress.kubernetes.io/proxy-ssl-server-name": "on",
        }
        if self.kube.cert_manager_issuer is not None:
            base["cert-manager.io/cluster-issuer"] = self.kube.cert_manager_issuer
        restricted = {**base, "nginx.ingress.kubernetes.io/whitelist-source-range": admin_from}
        parts = [(_ingress_name(name, path), path, base) for path in web.open_paths]
        parts += [(_ingress_name(name, path), path, restricted) for path in web.admin_paths]
        return [
            k8s.ingress(
                ingress,
                self.ns,
                k8s.labels(self.INSTANCE, name),
                annotations,
                self.kube.ingress_class,
                {host: f"{name}-tls"},
                [(path, name, port)],
            )
            for ingress, path, annotations in parts
        ]

    def files(self) -> dict[str, str]:
        labels = k8s.labels(self.INSTANCE, "homeport")
        files = {"namespace.yaml": k8s.dump(k8s.namespace(self.ns, self.INSTANCE, "services"))}
        if self.roles:
            files["homeport-secrets.yaml"] = k8s.dump(*self.pods.secrets(self.roles, self.INSTANCE))
            upstream = k8s.secret(
                "upstream-ca", self.ns, labels, {"ca.crt": "".join(self.inputs.ca_files)}
            )
            files["upstream-ca-secret.yaml"] = k8s.dump(upstream)
        policies = []
        for role in self.roles:
            if role.web is None:  # a process with no website (the alerts service)
                deployment = self.pods.deployment_object(
                    role.name, self.INSTANCE, [process_container(self.pods, role)], [role]
                )
                files[f"{role.name}.yaml"] = k8s.dump(deployment)
                # Nothing comes in: it only reaches out (each homeserver, a webhook).
                policies.append(
                    k8s.network_policy(role.name, self.ns, k8s.labels(self.INSTANCE, role.name), [])
                )
                continue
            name, web = role.name, self._web(role)
            port, cert, key = web.port, web.certificate, web.key
            service = k8s.service(name, self.ns, k8s.labels(self.INSTANCE, name), {"https": port})
            files[f"{name}.yaml"] = k8s.dump(self.web_deployment(role), service)
            files[f"{name}-ingress.yaml"] = k8s.dump(*self.web_ingresses(role))
            if self.kube.cert_manager_issuer is None:
                files[f"{name}-tls-secret.yaml"] = k8s.dump(
                    tls_secret(
                        f"{name}-tls",
                        self.ns,
                        labels,
                        self.inputs.files[cert],
                        self.inputs.files[key],
                    )
                )
            policies.append(
                k8s.network_policy(
                    name,
                    self.ns,
                    k8s.labels(self.INSTANCE, name),
                    [([k8s.from_namespace(self.kube.ingress_namespace)], [port])],
                )
            )
        if self.bundled_store:
            files["store-secret.yaml"] = k8s.dump(
                k8s.secret(
                    "store-secrets",
                    self.ns,
                    k8s.labels(self.INSTANCE, "postgres"),
                    {"postgres_password": self.inputs.store_password},
                )
            )
            files["store.yaml"] = k8s.dump(
                store_postgres(self.kube, self.ns),
                k8s.service(
                    "postgres", self.ns, k8s.labels(self.INSTANCE, "postgres"), {"main": 5432}
                ),
            )
            policies.append(
                k8s.network_policy(
                    "postgres",
                    self.ns,
                    k8s.labels(self.INSTANCE, "postgres"),
                    [([k8s.from_homeport_namespaces()], [5432])],
                )
            )
        if policies:
            files["network-policy.yaml"] = k8s.dump(*policies)
        return {f"services/{file}": text for file, text in files.items()} | {
            "services/kustomization.yaml": kustomization(self.ns, files)
        }


def _ingress_name(name: str, path: str) -> str:
    """`admin` for the root, `conference-metrics` for /metrics."""
    return name if path == "/" else f"{name}-{path.strip('/').replace('/', '-')}"


def store_postgres(kube: Kubernetes, namespace: str) -> dict[str, Any]:
    store = k8s.postgres(kube, namespace, Services.INSTANCE, "homeport", "store-secrets")
    store["spec"]["volumeClaimTemplates"] = [k8s.volume_claim(kube, "pgdata", kube.store_storage)]
    return store
