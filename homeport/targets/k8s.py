"""Kubernetes objects as plain dicts: labels, security contexts, volumes, PostgreSQL, files.

Shared by the homeservers' bases and the services' namespace
(`homeport.targets.kubernetes`). Pure.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import yaml

from homeport.config.kubernetes import Kubernetes

HOMEPORT_UID = 10001  # the user of deploy/homeport.Dockerfile
POSTGRES_UID = 999  # the user of the postgres image


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class _Dumper(yaml.SafeDumper):
    """Files inside ConfigMaps as readable blocks, not escaped one-liners; no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _string)


def dump(*documents: dict[str, Any]) -> str:
    header = "# Rendered by Homeport from homeport.yaml: `homeport render --target kubernetes`.\n"
    return header + "---\n".join(
        yaml.dump(d, Dumper=_Dumper, sort_keys=False, default_flow_style=False) for d in documents
    )


def labels(instance: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/part-of": "homeport",
    }


def meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels}


def namespace(name: str, instance: str, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels(instance, component)},
    }


def security(uid: int, read_only: bool = True) -> dict[str, Any]:
    """Non-root, no privilege escalation, no capabilities, the runtime's seccomp profile."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def volume_claim(k8s: Kubernetes, name: str, size: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if k8s.storage_class is not None:
        spec["storageClassName"] = k8s.storage_class
    return {"metadata": {"name": name}, "spec": spec}


def core(kind: str, name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """The head of an object of Kubernetes' core API (`v1`)."""
    return {"apiVersion": "v1", "kind": kind, "metadata": meta(name, namespace, labels)}


def service(
    name: str, namespace: str, selector: dict[str, str], ports: dict[str, int]
) -> dict[str, Any]:
    return {
        **core("Service", name, namespace, selector),
        "spec": {
            "selector": selector,
            "ports": [
                {"name": port_name, "port": port, "targetPort": port}
                for port_name, port in ports.items()
            ],
        },
    }


def secret(
    name: str, namespace: str, labels: dict[str, str], data: dict[str, str]
) -> dict[str, Any]:
    data = {key: b64(value) for key, value in data.items()}
    return {**core("Secret", name, namespace, labels), "type": "Opaque", "data": data}


def stateful_set(
    name: str,
    namespace: str,
    labels: dict[str, str],
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    fs_group: int,
    replicas: int = 1,
    pod_labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A StatefulSet whose headless Service (`serviceName`) shares its name; its pods
    carry no service-account token. `spec` adds fields (volumeClaimTemplates, ordinals)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(name, namespace, labels),
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            **spec,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, **(pod_labels or {})}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"fsGroup": fs_group},
                    "containers": containers,
                    "volumes": volumes,
                },
            },
        },
    }


def postgres(
    k8s: Kubernetes,
    namespace: str,
    instance: str,
    user: str,
    password_secret: str,
) -> dict[str, Any]:
    """A bundled PostgreSQL as a StatefulSet (C collation, as Synapse needs; fine for all)."""
    selector = labels(instance, "postgres")
    password = {"secretKeyRef": {"name": password_secret, "key": "postgres_password"}}
    container = {
        "name": "postgres",
        "image": k8s.postgres_image,
        "env": [
            {"name": "POSTGRES_USER", "value": user},
            {"name": "POSTGRES_DB", "value": user},
            {"name": "POSTGRES_PASSWORD", "valueFrom": password},
            {"name": "POSTGRES_INITDB_ARGS", "value": "--encoding=UTF8 --locale=C"},
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        "ports": [{"name": "postgres", "containerPort": 5432}],
        "readinessProbe": {
            "exec": {"command": ["pg_isready", "-U", user, "-d", user]},
            "periodSeconds": 10,
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        # PostgreSQL writes its socket and pid under /var/run/postgresql.
        "securityContext": security(POSTGRES_UID, read_only=False),
        "volumeMounts": [
            {"name": "pgdata", "mountPath": "/var/lib/postgresql/data"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        ],
    }
    volumes = [{"name": "run", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    return stateful_set(
        "postgres",
        namespace,
        selector,
        [container],
        volumes,
        POSTGRES_UID,
        volumeClaimTemplates=[volume_claim(k8s, "pgdata", k8s.postgres_storage)],
    )


_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9/_-]*$")


def path_type(path: str) -> str:
    """`Prefix` for a plain path; anything else (a dot, a regex) is `ImplementationSpecific`:
    ingress-nginx refuses other characters in Prefix paths (strict path validation, on
    by default since its 1.12) and reads ImplementationSpecific ones as a prefix, or as
    a regex where the host uses `use-regex`."""
    return "Prefix" if _PLAIN_PATH.match(path) else "ImplementationSpecific"


def ingress(
    name: str,
    namespace: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    ingress_class: str,
    hosts: dict[str, str],
    paths: list[tuple[str, str, int]],
) -> dict[str, Any]:
    """An Ingress: each host with its TLS Secret; `paths` as (path, service, port)."""
    routes = [
        {
            "path": prefix,
            "pathType": path_type(prefix),
            "backend": {"service": {"name": service, "port": {"number": port}}},
        }
        for prefix, service, port in paths
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {**meta(name, namespace, labels), "annotations": annotations},
        "spec": {
            "ingressClassName": ingress_class,
            "tls": [{"hosts": [host], "secretName": secret} for host, secret in hosts.items()],
            "rules": [{"host": host, "http": {"paths": routes}} for host in hosts],
        },
    }


def network_policy(
    name: str,
    namespace: str,
    pods: dict[str, str],
    rules: list[tuple[list[dict[str, Any]], list[int]]],
) -> dict[str, Any]:
    """Only these sources reach `pods`, each rule on its ports."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, namespace, pods),
        "spec": {
            "podSelector": {"matchLabels": pods},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": sources, "ports": [{"protocol": "TCP", "port": p} for p in ports]}
                for sources, ports in rules
            ],
        },
    }


def from_namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def from_homeport_namespaces() -> dict[str, Any]:
    """Pods of Homeport's own namespaces (each labelled part-of: homeport)."""
    return {
        "namespaceSelector": {"matchLabels": {"app.kubernetes.io/part-of": "homeport"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "homeport"}},
    }


_KEY = re.compile(r"[^-._a-zA-Z0-9]")


def secret_key(path: str) -> str:
    """A Secret's key for a file path: '/' becomes '--' (keys cannot hold '/')."""
    return _KEY.sub("-", path.strip("/").replace("/", "--"))
