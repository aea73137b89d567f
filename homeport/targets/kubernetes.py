"""Kubernetes manifests: one namespace per homeserver, Homeport's services beside them.

Per homeserver, in namespace `<namespace_prefix><name>`:

- Synapse as a StatefulSet with its volume (media; SQLite when no PostgreSQL),
  a Service, and an Ingress for its public host (and, when the APIs live
  elsewhere, the server name's host, for the well-knowns Synapse serves);
  two listeners: plain HTTP for the Ingress, where TLS ends, and TLS on the
  homeserver's port for Homeport's services, with the certificate of one
  machine (they check it against the server name, as there);
- its `homeserver.yaml` in a ConfigMap, rendered by the same code as on one
  machine; the database section, the keys and the secrets in Secrets, with
  the values generated once in the data folder (the same keys as on one
  machine: a homeserver moved to the cluster keeps its identity);
- the capabilities' processes of this homeserver, as each declares them
  (`ClusterProcess`): the audit bot as a second container of Synapse's pod
  (Synapse delivers transactions to it on the pod's loopback, as on one
  machine; its device keys live on Synapse's volume), group sync, when it
  serves this homeserver, as a Deployment;
- PostgreSQL as a StatefulSet when the homeserver is on `sqlite` and
  `bundled_postgres` is on; a `postgresql://` URL is used as is;
- with `workers:`, a StatefulSet per worker kind, Redis, and Ingresses that
  route endpoints to them (`homeport.targets.kubernetes_workers`);
- NetworkPolicies: Synapse takes traffic from the ingress controller, from
  a sibling's namespace only where the policy lets that sibling federate
  with it, and on its TLS listener from Homeport's services; PostgreSQL
  only from Synapse.

In `<namespace_prefix>services`: the capabilities' web services, as each
declares them (`ClusterWeb`): the admin website and the conference service
as Deployments behind Ingresses (the website only from `admin_from`), and
Homeport's store as a bundled PostgreSQL when the file keeps it on SQLite.
Every Homeport pod loads the same homeport.yaml, rendered for the cluster
(`homeport.targets.cluster`), and gets only the files of the data folder its
work needs.

The pieces: `kubernetes_homeserver` (a homeserver's base, from
`kubernetes_synapse`, `kubernetes_synapse_files`, `kubernetes_processes`,
`kubernetes_network` and `kubernetes_workers`) and
`kubernetes_services`; what this machine's data folder gives them,
`kubernetes_inputs`.

Pure: the model, versions and the secrets' values in; file names and texts out.
"""

from __future__ import annotations

from homeport.alerts.rules import prometheus_rule
from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.types import parse_postgres_url
from homeport.errors import HomeportError
from homeport.targets import k8s
from homeport.targets.cluster import services_namespace
from homeport.targets.kubernetes_homeserver import homeserver_files
from homeport.targets.kubernetes_pods import ClusterInputs, HomeserverSecrets
from homeport.targets.kubernetes_services import Services

__all__ = ["ClusterInputs", "HomeserverSecrets", "render_kubernetes"]


def render_kubernetes(deployment: Deployment, inputs: ClusterInputs) -> dict[str, str]:
    """Every homeserver's base under its name, the services' under `services/`, and a
    top kustomization of them all."""
    assert deployment.kubernetes is not None
    if "services" in deployment.homeservers:
        raise HomeportError(
            "a homeserver named 'services' would share its namespace with Homeport's services "
            f"({services_namespace(deployment.kubernetes)}): rename it in homeport.yaml"
        )
    files: dict[str, str] = {}
    for name in deployment.homeservers:
        files.update(homeserver_files(deployment, name, inputs))
    resources = [f"{name}/" for name in deployment.homeservers]
    services = Services(deployment, inputs)
    if services.needed():
        files.update(services.files())
        resources.append("services/")
    top = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }
    files["kustomization.yaml"] = k8s.dump(top)
    if deployment.alerts is not None:
        # For the Prometheus Operator, apart: `kubectl apply -k monitoring/` where its
        # PrometheusRule kind exists (the top kustomization would fail without it).
        namespace = services_namespace(deployment.kubernetes)
        rule = prometheus_rule(deployment.alerts, namespace, k8s.labels("services", "alerts"))
        files["monitoring/prometheus-rule.yaml"] = k8s.dump(rule)
        files["monitoring/kustomization.yaml"] = k8s.dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["prometheus-rule.yaml"],
            }
        )
    return files


def database_password(hs: Homeserver) -> str | None:
    """The password in a homeserver's postgresql:// URL, if any (it goes to the Secret)."""
    if hs.database == "sqlite":
        return None
    return parse_postgres_url(hs.database).password
