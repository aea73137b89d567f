"""Synapse's main process in a homeserver's namespace: a StatefulSet and its Service. Pure.

One replica with its volume from a claim template (media; SQLite when no
PostgreSQL); probes on `/health` with a generous startup probe (a first
start or an upgrade migrates the database); non-root, read-only root
filesystem, no capabilities, no service-account token. Two listeners:
plain HTTP for the Ingress, where TLS ends, and TLS on the homeserver's
port for Homeport's services. A capability's process beside Synapse (the audit
bot) is a second container of the pod (`homeport.targets.kubernetes_processes`). Workers reuse
`process_container` and `process_volumes` (`homeport.targets.kubernetes_workers`).
"""

from __future__ import annotations

from typing import Any

from homeport.config.kubernetes import Kubernetes
from homeport.targets import k8s
from homeport.targets.cluster import DATA
from homeport.targets.kubernetes_namespace import HomeserverNamespace
from homeport.targets.kubernetes_processes import sidecar_containers
from homeport.targets.kubernetes_synapse_config import CA, CONFIG_DIR, SECRETS, SYNAPSE_PORT
from homeport.targets.kubernetes_synapse_files import secret_config_paths, synapse_files
from homeport.targets.kubernetes_workers import PROCESS, REPLICATION_PORT

SYNAPSE_UID = 991  # the user of Synapse's own image


def synapse_image(kube: Kubernetes, synapse_version: str) -> str:
    """Synapse's image with Homeport's module installed (docs/deployment.md builds it)."""
    return kube.synapse_image or f"homeport-synapse:{synapse_version}"


def process_container(
    ns: HomeserverNamespace,
    name: str,
    command: list[str],
    ports: dict[str, int],
    probe_port: str,
    resources: dict[str, Any],
) -> dict[str, Any]:
    """A container of a Synapse process (the main one or a worker): the rendered
    configuration, the Secret's keys and files, the CA of federation; confined."""
    probe = {"httpGet": {"path": "/health", "port": probe_port}, "periodSeconds": 10}
    mounts = [
        {"name": "config", "mountPath": str(CONFIG_DIR), "readOnly": True},
        {"name": "secrets", "mountPath": str(SECRETS), "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
    ]
    mounts += [
        {"name": "secrets", "mountPath": path, "subPath": key, "readOnly": True}
        for key, (path, _) in synapse_files(ns).items()
    ]
    if ns.kube.cert_manager_issuer is None:
        mounts.append({"name": "federation-ca", "mountPath": str(CA), "readOnly": True})
    return {
        "name": name,
        "image": synapse_image(ns.kube, ns.inputs.synapse_version),
        "command": command,
        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        "ports": [{"name": n, "containerPort": port} for n, port in ports.items()],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        # A first start (or an upgrade) migrates the database: give it time.
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 120},
        "resources": resources,
        "securityContext": k8s.security(SYNAPSE_UID),
        "volumeMounts": mounts,
    }


def process_volumes(ns: HomeserverNamespace) -> list[dict[str, Any]]:
    """The volumes `process_container`'s mounts name."""
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": "synapse-config"}},
        {
            "name": "secrets",
            "secret": {"secretName": "synapse-secrets", "defaultMode": 0o440},
        },
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]
    if ns.kube.cert_manager_issuer is None:
        volumes.append({"name": "federation-ca", "configMap": {"name": "federation-ca"}})
    return volumes


def service_ports(ns: HomeserverNamespace) -> dict[str, int]:
    """The main process's ports, for its container and its Service."""
    ports = {"http": SYNAPSE_PORT, "homeport": ns.hs.port}
    if ns.has_workers:
        ports["replication"] = REPLICATION_PORT
    return ports


def synapse_container(ns: HomeserverNamespace) -> dict[str, Any]:
    # Synapse merges its files: the ConfigMap's, then the Secret's parts (the
    # database section, and Redis with workers: they hold passwords).
    command = [
        "python",
        "-m",
        "synapse.app.homeserver",
        "--config-path",
        str(CONFIG_DIR / "homeserver.yaml"),
        *secret_config_paths(ns),
        "--no-secrets-in-config",
    ]
    resources = {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }
    container = process_container(ns, "synapse", command, service_ports(ns), "http", resources)
    root = DATA / "homeservers" / ns.name
    container["volumeMounts"] = [
        {"name": "data", "mountPath": str(root)},
        *container["volumeMounts"],
    ]
    return container


def synapse_stateful_set(ns: HomeserverNamespace) -> dict[str, Any]:
    labels = ns.labels("synapse")
    init, sidecars = sidecar_containers(ns)
    volumes = process_volumes(ns)
    if ns.beside_synapse:
        names = {v["name"] for v in volumes}
        volumes += [v for v in ns.pods.volumes(ns.beside_synapse) if v["name"] not in names]
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {"fsGroup": SYNAPSE_UID},
        "containers": [synapse_container(ns), *sidecars],
        "volumes": volumes,
    }
    if init:
        spec["initContainers"] = init
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": k8s.meta("synapse", ns.namespace, labels),
        "spec": {
            "serviceName": "synapse",
            "replicas": 1,  # one main process; workers are StatefulSets of their own
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": {**labels, **PROCESS}}, "spec": spec},
            "volumeClaimTemplates": [k8s.volume_claim(ns.kube, "data", ns.kube.media_storage)],
        },
    }


def synapse_service(ns: HomeserverNamespace) -> dict[str, Any]:
    return k8s.service("synapse", ns.namespace, ns.labels("synapse"), service_ports(ns))
