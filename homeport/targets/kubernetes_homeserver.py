"""One homeserver's kustomize base: every file of its namespace, and its kustomization. Pure.

The parts live in modules of their own: Synapse's configuration objects
(`kubernetes_synapse_files`), its StatefulSet (`kubernetes_synapse`), the
capabilities' processes beside it or in Deployments of their own
(`kubernetes_processes`), the Ingress and NetworkPolicies (`kubernetes_network`), and the workers
(`kubernetes_workers`); this module puts them into files.
"""

from __future__ import annotations

import functools
from pathlib import Path

from homeport.config.deployment import Deployment
from homeport.layout import DeploymentLayout
from homeport.targets import k8s
from homeport.targets.cluster import DATA, in_cluster
from homeport.targets.kubernetes_namespace import HomeserverNamespace, homeserver_namespace
from homeport.targets.kubernetes_network import (
    ingress,
    ingress_annotations,
    network_policies,
    public_sources,
)
from homeport.targets.kubernetes_pods import ClusterInputs, kustomization
from homeport.targets.kubernetes_processes import process_deployments
from homeport.targets.kubernetes_synapse import (
    process_container,
    process_volumes,
    synapse_service,
    synapse_stateful_set,
)
from homeport.targets.kubernetes_synapse_config import CONFIG_DIR
from homeport.targets.kubernetes_synapse_files import (
    ca_config_map,
    config_map,
    secret_config_paths,
    synapse_secret,
    tls_secrets,
)
from homeport.targets.kubernetes_workers import WorkerManifests


def worker_manifests(ns: HomeserverNamespace) -> WorkerManifests:
    """The workers' objects, built from the same parts as the main process's."""
    return WorkerManifests(
        cluster=in_cluster(ns.deployment, ns.kube, ""),
        kube=ns.kube,
        name=ns.name,
        namespace=ns.namespace,
        files=DeploymentLayout(Path(str(DATA))).homeserver(ns.name),
        container=functools.partial(process_container, ns),
        volumes=process_volumes(ns),
        config_dir=CONFIG_DIR,
        secret_config=secret_config_paths(ns),
        media_store=str(ns.config["media_store_path"]),
        public_sources=public_sources(ns),
        ingress_annotations=ingress_annotations(ns),
        hosts=ns.hosts(),
        redis_password=ns.secrets.redis_password,
    )


def homeserver_files(deployment: Deployment, name: str, inputs: ClusterInputs) -> dict[str, str]:
    """`<name>/<file>` -> text: the namespace's objects and its kustomization."""
    ns = homeserver_namespace(deployment, name, inputs)
    workers = worker_manifests(ns) if ns.has_workers else None
    files = {
        "namespace.yaml": k8s.dump(k8s.namespace(ns.namespace, name, "homeserver")),
        "synapse-config.yaml": k8s.dump(
            config_map(ns, workers.config_files() if workers is not None else {})
        ),
        "synapse-secrets.yaml": k8s.dump(synapse_secret(ns)),
        "synapse.yaml": k8s.dump(synapse_stateful_set(ns), synapse_service(ns)),
        "ingress.yaml": k8s.dump(ingress(ns)),
        "network-policy.yaml": k8s.dump(
            *network_policies(ns, workers.network_policies() if workers is not None else [])
        ),
    }
    if ns.kube.cert_manager_issuer is None:
        files["federation-ca.yaml"] = k8s.dump(ca_config_map(ns))
        files["synapse-tls-secrets.yaml"] = k8s.dump(*tls_secrets(ns))
    if ns.bundled_postgres:
        files["postgres.yaml"] = k8s.dump(
            k8s.postgres(ns.kube, ns.namespace, name, "synapse", "synapse-secrets"),
            k8s.service("postgres", ns.namespace, ns.labels("postgres"), {"main": 5432}),
        )
    if ns.roles:
        files["homeport-secrets.yaml"] = k8s.dump(*ns.pods.secrets(ns.roles, name))
    for file, deployment_object in process_deployments(ns).items():
        files[file] = k8s.dump(deployment_object)
    if workers is not None:
        files.update(workers.manifests(ns.kube.ingress_class))
    return {f"{name}/{file}": text for file, text in files.items()} | {
        f"{name}/kustomization.yaml": kustomization(ns.namespace, files)
    }
