"""What every pod running Homeport's code shares in a cluster, and the inputs of rendering.

Image, the cluster's homeport.yaml (Secret `homeport-config`), and a data
folder seeded at start from the Secret `homeport-files` with exactly the
files the pod's roles need (`homeport.targets.cluster.role_files`). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from homeport.config.deployment import Deployment
from homeport.config.kubernetes import Kubernetes
from homeport.targets import k8s
from homeport.targets.cluster import (
    CONFIG,
    DATA,
    Role,
    cluster_path,
    cluster_yaml,
    in_cluster,
    reaches,
    role_files,
    service_account_path,
)

SEED = PurePosixPath("/seed")


@dataclass(frozen=True)
class HomeserverSecrets:
    """Values generated once on the machine that renders (the data folder)."""

    signing_key: str
    registration_shared_secret: str
    macaroon_secret_key: str
    form_secret: str
    postgres_password: str
    # Host -> (certificate chain, key) for the Ingress, when cert-manager does not issue them.
    tls: dict[str, tuple[str, str]]
    # The TLS listener Homeport's services use: the certificate of one machine.
    listener: tuple[str, str] = ("", "")
    # Homeport's service account: {"user_id", "password"[, "access_token"]} as JSON.
    service_account: str = "{}"
    # With workers: their HTTP replication secret, and the bundled Redis's password.
    replication_secret: str = ""
    redis_password: str = ""


@dataclass(frozen=True)
class ClusterInputs:
    """Everything besides the model: versions, and what the data folder holds."""

    synapse_version: str
    homeport_version: str
    homeservers: dict[str, HomeserverSecrets]
    # The local CA's certificate, then each of `trusted_ca_files`.
    ca_files: list[str]
    # Files of this machine the services need (`cluster.role_files`), by their path here.
    files: dict[Path, str]
    store_password: str = ""


def homeport_image(kube: Kubernetes, homeport_version: str) -> str:
    return kube.homeport_image or f"homeport:{homeport_version}"


class HomeportPods:
    """What every pod running Homeport's code shares: image, config, seeded data folder."""

    def __init__(self, deployment: Deployment, inputs: ClusterInputs, namespace: str) -> None:
        assert deployment.kubernetes is not None
        self.deployment = deployment
        self.kube = deployment.kubernetes
        self.inputs = inputs
        self.ns = namespace
        self.image = homeport_image(self.kube, inputs.homeport_version)

    def seed_files(self, role_list: list[Role]) -> dict[PurePosixPath, str]:
        """Path in the pods -> content: the files these roles need, nothing else."""
        seeded: dict[PurePosixPath, str] = {}
        for role in role_list:
            for path in role_files(self.deployment, role):
                seeded[cluster_path(self.deployment, path)] = self.inputs.files[path]
            for name in reaches(self.deployment, role):
                account = self.inputs.homeservers[name].service_account
                seeded[service_account_path(name)] = account
        return seeded

    def secrets(self, role_list: list[Role], instance: str) -> list[dict[str, Any]]:
        labels = k8s.labels(instance, "homeport")
        seeded = self.seed_files(role_list)
        files = {k8s.secret_key(str(path)): text for path, text in sorted(seeded.items())}
        return [
            k8s.secret("homeport-config", self.ns, labels, {"homeport.yaml": self.config_text()}),
            k8s.secret("homeport-files", self.ns, labels, files),
        ]

    def config_text(self) -> str:
        return cluster_yaml(in_cluster(self.deployment, self.kube, self.inputs.store_password))

    def volumes(self, role_list: list[Role]) -> list[dict[str, Any]]:
        """The config, the seed (data-folder files) and the named files; /data and /tmp."""
        seeded = sorted(self.seed_files(role_list))
        data_items = [
            {"key": k8s.secret_key(str(p)), "path": str(p.relative_to(DATA))}
            for p in seeded
            if DATA in p.parents
        ]
        named_items = [
            {"key": k8s.secret_key(str(p)), "path": p.name} for p in seeded if DATA not in p.parents
        ]
        volumes: list[dict[str, Any]] = [
            {"name": "homeport-config", "secret": {"secretName": "homeport-config"}},
            {
                "name": "seed",
                "secret": {"secretName": "homeport-files", "items": data_items},
            },
            {"name": "homeport-data", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ]
        if named_items:
            volumes.append(
                {
                    "name": "named-files",
                    "secret": {"secretName": "homeport-files", "items": named_items},
                }
            )
        return volumes

    def mounts(self, role_list: list[Role]) -> list[dict[str, Any]]:
        mounts: list[dict[str, Any]] = [
            {"name": "homeport-config", "mountPath": str(CONFIG.parent), "readOnly": True},
            {"name": "homeport-data", "mountPath": str(DATA)},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        ]
        if any(DATA not in p.parents for p in self.seed_files(role_list)):
            mounts.append(
                {"name": "named-files", "mountPath": "/etc/homeport/files", "readOnly": True}
            )
        return mounts

    def container(
        self, name: str, command: list[str], role_list: list[Role], extra: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "name": name,
            "image": self.image,
            "command": ["python", "-m", "homeport", *command],
            "env": [
                {"name": "HOMEPORT_LOG", "value": "stderr"},
                {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            ],
            "securityContext": k8s.security(k8s.HOMEPORT_UID),
            "volumeMounts": self.mounts(role_list),
            **extra,
        }

    def init_containers(
        self, role_list: list[Role], extra_mounts: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Copy the seed into the writable data folder; migrate the store (one at a time)."""
        extra_mounts = extra_mounts or []
        seed = {
            "name": "seed",
            "image": self.image,
            # Secret volumes hold symlinks; files land private, as in the data folder.
            "command": ["sh", "-c", f"umask 077 && cp -RL {SEED}/. {DATA}/"],
            "securityContext": k8s.security(k8s.HOMEPORT_UID),
            "volumeMounts": [
                {"name": "seed", "mountPath": str(SEED), "readOnly": True},
                {"name": "homeport-data", "mountPath": str(DATA)},
                *extra_mounts,
            ],
        }
        migrate = self.container(
            "store-migrate",
            ["store", "migrate", "-c", str(CONFIG)],
            role_list,
            {"resources": {"requests": {"cpu": "50m", "memory": "128Mi"}}},
        )
        migrate["volumeMounts"] = [*migrate["volumeMounts"], *extra_mounts]
        return [seed, migrate]

    def deployment_object(
        self, name: str, instance: str, containers: list[dict[str, Any]], role_list: list[Role]
    ) -> dict[str, Any]:
        selector = k8s.labels(instance, name)
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": k8s.meta(name, self.ns, selector),
            "spec": {
                "replicas": 1,
                # Never two at once: one group sync writes, one website holds the sessions.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {"fsGroup": k8s.HOMEPORT_UID},
                        "initContainers": self.init_containers(role_list),
                        "containers": containers,
                        "volumes": self.volumes(role_list),
                    },
                },
            },
        }


def local_probe(port: int, path: str = "/health") -> dict[str, Any]:
    """A probe of a listener on the pod's loopback, where kubelet cannot connect."""
    script = (
        "import sys, urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=5)"
    )
    return {"exec": {"command": ["python", "-c", script]}, "periodSeconds": 15}


def kustomization(namespace: str, files: dict[str, str]) -> str:
    return k8s.dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": sorted(files),
        }
    )


def tls_secret(
    name: str, namespace: str, labels: dict[str, str], certificate: str, key: str
) -> dict[str, Any]:
    data = {"tls.crt": k8s.b64(certificate), "tls.key": k8s.b64(key)}
    return {
        **k8s.core("Secret", name, namespace, labels),
        "type": "kubernetes.io/tls",
        "data": data,
    }
