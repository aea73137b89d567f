"""Who reaches a homeserver's Synapse in the cluster: its Ingress and NetworkPolicies. Pure.

The Ingress serves the public host (and the server name's host, for the
well-knowns) on `/_matrix`, `/_synapse/client` and `/.well-known/matrix`:
never `/_synapse/admin` or `/_homeport/`. Synapse's public listener takes
connections from the ingress controller and from a sibling's namespace only
where the policy lets that sibling federate with it; its TLS listener (the
admin API) from Homeport's pods only; PostgreSQL from Synapse only.
"""

from __future__ import annotations

from typing import Any

from homeport.policy.effective import federation_allowed
from homeport.targets import k8s
from homeport.targets.cluster import namespace_of, services_namespace
from homeport.targets.kubernetes_namespace import HomeserverNamespace
from homeport.targets.kubernetes_synapse_config import SYNAPSE_PORT
from homeport.targets.kubernetes_workers import PROCESS, REPLICATION_PORT
from homeport.targets.nginx import max_upload_bytes


def ingress_annotations(ns: HomeserverNamespace) -> dict[str, str]:
    annotations = {
        "nginx.ingress.kubernetes.io/proxy-body-size": str(max_upload_bytes(ns.hs)),
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
    }
    if ns.kube.cert_manager_issuer is not None:
        annotations["cert-manager.io/cluster-issuer"] = ns.kube.cert_manager_issuer
    return annotations


def ingress(ns: HomeserverNamespace) -> dict[str, Any]:
    annotations = ingress_annotations(ns)
    if ns.has_workers:
        # The workers' Ingresses route by regex, which ingress-nginx applies to every
        # path of their hosts: said here too, so that it reads as it works.
        annotations["nginx.ingress.kubernetes.io/use-regex"] = "true"
    # Synapse's server well-known names the server name's host on 443, so
    # that host carries the APIs too. /_synapse/admin and /_homeport/ are
    # not routed: never on the Internet.
    prefixes = ["/_matrix", "/_synapse/client", "/.well-known/matrix"]
    return k8s.ingress(
        "synapse",
        ns.namespace,
        ns.labels("synapse"),
        annotations,
        ns.kube.ingress_class,
        ns.hosts(),
        [(prefix, "synapse", SYNAPSE_PORT) for prefix in prefixes],
    )


def public_sources(ns: HomeserverNamespace) -> list[dict[str, Any]]:
    """Who reaches what the Ingress serves: its controller, and the siblings' namespaces
    where the policy lets them federate with this homeserver."""
    allowed = [
        other
        for other in ns.deployment.homeservers
        if other != ns.name and federation_allowed(ns.deployment, other, ns.name)
    ]
    public = [k8s.from_namespace(ns.kube.ingress_namespace)]
    return public + [k8s.from_namespace(namespace_of(ns.kube, other)) for other in allowed]


def network_policies(
    ns: HomeserverNamespace, worker_policies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    synapse = ns.labels("synapse")
    # The TLS listener (the admin API): Homeport's pods, here and in the services'.
    private = [{"podSelector": {}}, k8s.from_namespace(services_namespace(ns.kube))]
    rules = [(public_sources(ns), [SYNAPSE_PORT]), (private, [ns.hs.port])]
    if ns.has_workers:
        processes = {**PROCESS, "app.kubernetes.io/instance": ns.name}
        rules.append(([{"podSelector": {"matchLabels": processes}}], [REPLICATION_PORT]))
    policies = [k8s.network_policy("synapse", ns.namespace, synapse, rules)]
    if ns.bundled_postgres:
        policies.append(
            k8s.network_policy(
                "postgres",
                ns.namespace,
                ns.labels("postgres"),
                [([{"podSelector": {"matchLabels": synapse}}], [5432])],
            )
        )
    return policies + worker_policies
