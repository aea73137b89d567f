"""A homeserver's Synapse workers in its namespace: Homeport's `workers:` on Kubernetes. Pure.

Each worker kind is a StatefulSet of its own, so each scales on its own
(`workers:` in homeport.yaml, then render again): Synapse wants every
worker process to carry a unique, stable `worker_name` (locks, stream
positions, the sharding lists of senders, pushers and event writers), and a
StatefulSet's pods have exactly that: `generic-1`, `generic-2`... (ordinals
from 1, the names of one machine), each pod reading the ConfigMap's
`worker-<its name>.yaml`. A headless Service per kind gives event persisters
the addresses the instance map names and the Ingress its backends.

Replication is plain HTTP inside the namespace, authenticated by the
secret generated once, and a NetworkPolicy lets only this homeserver's
Synapse processes reach it; Redis (bundled, with a password, or the
`kubernetes.redis_url`) likewise. The Ingress sends each endpoint where
Synapse's documentation assigns it (`homeport.homeserver.routing`): ingress-nginx
cannot route on the method, so the GET-only rows stay on the main process,
and the media admin API is not routed (no admin path is on the Internet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from homeport.capabilities import synapse_pieces
from homeport.capability import SynapsePieces
from homeport.config.deployment import Deployment
from homeport.config.kubernetes import Kubernetes
from homeport.config.workers import Redis, WorkerKind, WorkerSpec
from homeport.homeserver import workers
from homeport.homeserver.routing import Route, routes
from homeport.layout import DeploymentLayout, HomeserverLayout
from homeport.targets import k8s
from homeport.targets.cluster import DATA

HTTP_PORT = 8008  # what the Ingress sends a worker (as the main process's plain listener)
REPLICATION_PORT = 9093
REDIS_PORT = 6379
REDIS_UID = 999  # the user of the redis image
EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 - the pod's; NetworkPolicies guard it

# Every Synapse process of a homeserver carries this label besides its own: replication
# and Redis take connections from these pods only.
PROCESS = {"app.kubernetes.io/component": "synapse"}

_PREFIX: dict[WorkerKind, str] = {
    "generic": "generic",
    "media": "media",
    "federation_sender": "federation-sender",
    "pusher": "pusher",
    "event_persister": "event-persister",
}

_RESOURCES: dict[WorkerKind, dict[str, Any]] = {
    "generic": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
    "media": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "federation_sender": {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    },
    "pusher": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "event_persister": {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    },
}

# (name, command, ports, probe port, resources) -> a Synapse process's container: the
# main process's mounts and confinement, without its volume.
ContainerFactory = Callable[[str, list[str], dict[str, int], str, dict[str, Any]], dict[str, Any]]


def kind_name(kind: WorkerKind) -> str:
    """The StatefulSet and headless Service of a kind; its pods are `<this>-<n>`."""
    return _PREFIX[kind]


def worker_address(namespace: str, spec: WorkerSpec) -> tuple[str, int]:
    """Where a replicating worker (an event persister) listens in the cluster."""
    return (
        f"{spec.name}.{kind_name(spec.kind)}.{namespace}.svc.cluster.local",
        REPLICATION_PORT,
    )


def redis_settings(kube: Kubernetes, namespace: str, password: str) -> dict[str, Any]:
    """Synapse's `redis:` section in the cluster: the external URL, or the bundled Redis."""
    if kube.redis_url is not None:
        return Redis(url=kube.redis_url).synapse_settings()
    return {
        "enabled": True,
        "host": f"redis.{namespace}.svc.cluster.local",
        "port": REDIS_PORT,
        "password": password,
    }


def main_settings(
    cluster: Deployment, name: str, files: HomeserverLayout, namespace: str, main_host: str
) -> dict[str, Any]:
    """The workers' part of the main process's homeserver.yaml in the cluster (no secret:
    `redis` goes to the Secret, see `redis_settings`)."""
    settings = workers.main_settings(
        cluster,
        name,
        files,
        main=(main_host, REPLICATION_PORT),
        address=lambda spec: worker_address(namespace, spec),
    )
    settings.pop("redis", None)
    return settings


@dataclass(frozen=True)
class WorkerManifests:
    """The objects of one homeserver's workers (and its bundled Redis)."""

    cluster: Deployment  # the model as rendered for the cluster
    kube: Kubernetes
    name: str
    namespace: str
    files: HomeserverLayout  # the cluster's paths of this homeserver
    container: ContainerFactory
    volumes: list[dict[str, Any]]  # those the containers' mounts name
    config_dir: PurePosixPath
    secret_config: list[str]  # --config-path arguments after homeserver.yaml (in the Secret)
    media_store: str
    public_sources: list[dict[str, Any]]  # who reaches what the Ingress serves
    ingress_annotations: dict[str, str]
    hosts: dict[str, str]  # Ingress host -> its TLS Secret
    redis_password: str

    @property
    def specs(self) -> list[WorkerSpec]:
        return self.cluster.homeservers[self.name].workers.specs()

    @property
    def kinds(self) -> list[WorkerKind]:
        return list(dict.fromkeys(spec.kind for spec in self.specs))

    def labels(self, kind: WorkerKind) -> dict[str, str]:
        return k8s.labels(self.name, f"synapse-{kind_name(kind)}")

    @property
    def bundled_redis(self) -> bool:
        return self.kube.redis_url is None

    @property
    def pieces(self) -> SynapsePieces:
        """What the capabilities add to the homeserver's config (listener resources)."""
        return synapse_pieces(self.cluster, self.name, DeploymentLayout(Path(str(DATA))))

    def listener(self, spec: WorkerSpec) -> dict[str, Any]:
        port = REPLICATION_PORT if spec.replication else HTTP_PORT
        return workers.worker_listener(
            self.cluster, spec, self.pieces, port, EVERY_ADDRESS, tls=False
        )

    def config_files(self) -> dict[str, str]:
        """ConfigMap entries: each worker's own file, read after the shared ones."""
        log_config = str(self.config_dir / "log.yaml")
        return {
            f"worker-{spec.name}.yaml": yaml.safe_dump(
                workers.worker_config(
                    self.cluster, spec, self.files, self.pieces, self.listener(spec), log_config
                ),
                sort_keys=False,
            )
            for spec in self.specs
        }

    def stateful_set(self, kind: WorkerKind) -> dict[str, Any]:
        specs = [spec for spec in self.specs if spec.kind == kind]
        labels = self.labels(kind)
        port_name, port = (
            ("replication", REPLICATION_PORT) if specs[0].replication else ("http", HTTP_PORT)
        )
        command = [
            "python",
            "-m",
            "synapse.app.generic_worker",
            "--config-path",
            str(self.config_dir / "homeserver.yaml"),
            *self.secret_config,
            "--config-path",
            str(self.config_dir / "worker-$(POD_NAME).yaml"),  # Kubernetes fills it in
        ]
        container = self.container(
            kind_name(kind), command, {port_name: port}, port_name, _RESOURCES[kind]
        )
        container["env"] = [
            *container["env"],
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]
        volumes = list(self.volumes)
        if kind == "media":
            container["volumeMounts"] = [
                *container["volumeMounts"],
                {"name": "media", "mountPath": self.media_store},
            ]
            volumes.append({"name": "media", "persistentVolumeClaim": {"claimName": "media"}})
        return k8s.stateful_set(
            kind_name(kind),
            self.namespace,
            labels,
            [container],
            volumes,
            container["securityContext"]["runAsUser"],
            replicas=len(specs),
            pod_labels=PROCESS,
            # Pods named as on one machine: generic-1, generic-2...
            ordinals={"start": 1},
            podManagementPolicy="Parallel",
        )

    def headless_service(self, kind: WorkerKind) -> dict[str, Any]:
        spec = next(s for s in self.specs if s.kind == kind)
        port_name, port = (
            ("replication", REPLICATION_PORT) if spec.replication else ("http", HTTP_PORT)
        )
        service = k8s.service(kind_name(kind), self.namespace, self.labels(kind), {port_name: port})
        service["spec"]["clusterIP"] = "None"
        return service

    def media_claim(self) -> dict[str, Any]:
        """The media store the media workers share: one volume, ReadWriteMany when several
        pods mount it (the StorageClass must offer it)."""
        count = self.cluster.homeservers[self.name].workers.media
        claim = k8s.volume_claim(self.kube, "media", self.kube.media_storage)
        claim["spec"]["accessModes"] = ["ReadWriteOnce" if count == 1 else "ReadWriteMany"]
        head = k8s.core("PersistentVolumeClaim", "media", self.namespace, self.labels("media"))
        return {**head, "spec": claim["spec"]}

    def redis_secret(self) -> dict[str, Any]:
        """The bundled Redis's configuration: it holds the password."""
        config = (
            f"port {REDIS_PORT}\n"
            f"requirepass {self.redis_password}\n"
            'save ""\n'
            "appendonly no\n"
            "dir /data\n"
        )
        labels = k8s.labels(self.name, "redis")
        return k8s.secret("redis-config", self.namespace, labels, {"redis.conf": config})

    def redis(self) -> list[dict[str, Any]]:
        """A Redis for replication only (pub/sub): no persistence, a password, one pod."""
        labels = k8s.labels(self.name, "redis")
        container = {
            "name": "redis",
            "image": self.kube.redis_image,
            "command": ["redis-server", "/etc/redis/redis.conf"],
            "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
            "readinessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10},
            "livenessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 20},
            "resources": {
                "requests": {"cpu": "50m", "memory": "64Mi"},
                "limits": {"memory": "512Mi"},
            },
            "securityContext": k8s.security(REDIS_UID),
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/redis", "readOnly": True},
                {"name": "data", "mountPath": "/data"},
            ],
        }
        volumes = [
            {"name": "config", "secret": {"secretName": "redis-config", "defaultMode": 0o440}},
            {"name": "data", "emptyDir": {}},
        ]
        stateful_set = k8s.stateful_set(
            "redis", self.namespace, labels, [container], volumes, REDIS_UID
        )
        return [stateful_set, k8s.service("redis", self.namespace, labels, {"redis": REDIS_PORT})]

    def ingress_routes(self) -> list[Route]:
        """What the Ingress sends to workers: the routing table without the GET-only rows
        and without the admin API's (never on the Internet, as the main Ingress)."""
        hs = self.cluster.homeservers[self.name]
        table = routes(generic=hs.workers.generic > 0, media=hs.workers.media > 0)
        return [
            entry
            for entry in table
            if not entry.get_only and not entry.pattern.startswith("^/_synapse/admin")
        ]

    def ingresses(self, ingress_class: str) -> list[dict[str, Any]]:
        """One Ingress per way of balancing: clients by access token (a user's /sync stays
        on one worker), federation by source address (as Synapse's documentation
        advises for transactions), media round robin. Every path on these hosts is
        then a regex (ingress-nginx applies `use-regex` host-wide)."""
        table = self.ingress_routes()

        def federation(entry: Route) -> bool:
            return "/federation/" in entry.pattern or "/_matrix/key/" in entry.pattern

        generic = [r for r in table if r.target == "generic"]
        groups: list[tuple[str, WorkerKind, str | None, list[Route]]] = [
            (
                "synapse-generic-client",
                "generic",
                "$http_authorization",
                [r for r in generic if not federation(r)],
            ),
            (
                "synapse-generic-federation",
                "generic",
                "$remote_addr",
                list(filter(federation, generic)),
            ),
            ("synapse-media", "media", None, [r for r in table if r.target == "media"]),
        ]
        found = []
        for name, kind, hash_by, group in groups:
            if not group:
                continue
            annotations = {
                **self.ingress_annotations,
                "nginx.ingress.kubernetes.io/use-regex": "true",
            }
            if hash_by is not None:
                annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] = hash_by
            paths = [(ingress_path(r.pattern), kind_name(kind), HTTP_PORT) for r in group]
            found.append(
                k8s.ingress(
                    name,
                    self.namespace,
                    self.labels(kind),
                    annotations,
                    ingress_class,
                    self.hosts,
                    paths,
                )
            )
        return found

    def network_policies(self) -> list[dict[str, Any]]:
        processes = [
            {"podSelector": {"matchLabels": {**PROCESS, "app.kubernetes.io/instance": self.name}}}
        ]
        policies = []
        for kind in self.kinds:
            spec = next(s for s in self.specs if s.kind == kind)
            if spec.serves_http:
                rules = [(self.public_sources, [HTTP_PORT])]
            elif spec.replication:
                rules = [(processes, [REPLICATION_PORT])]
            else:
                rules = []  # federation senders and pushers take no connection
            policies.append(
                k8s.network_policy(kind_name(kind), self.namespace, self.labels(kind), rules)
            )
        if self.bundled_redis:
            policies.append(
                k8s.network_policy(
                    "redis",
                    self.namespace,
                    k8s.labels(self.name, "redis"),
                    [(processes, [REDIS_PORT])],
                )
            )
        return policies

    def manifests(self, ingress_class: str) -> dict[str, str]:
        """File name -> text, for the homeserver's kustomize base."""
        objects: list[dict[str, Any]] = []
        for kind in self.kinds:
            objects += [self.stateful_set(kind), self.headless_service(kind)]
        if "media" in self.kinds:
            objects.append(self.media_claim())
        files = {"workers.yaml": k8s.dump(*objects)}
        ingresses = self.ingresses(ingress_class)
        if ingresses:
            files["workers-ingress.yaml"] = k8s.dump(*ingresses)
        if self.bundled_redis:
            files["redis.yaml"] = k8s.dump(*self.redis())
            files["redis-secrets.yaml"] = k8s.dump(self.redis_secret())
        return files


def ingress_path(pattern: str) -> str:
    """A routing regex as an ingress-nginx path: it writes `location ~* "^<path>"` itself."""
    return pattern.removeprefix("^")
