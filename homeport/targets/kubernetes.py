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
- its audit bot as a second container of Synapse's pod: Synapse delivers
  transactions to it on the pod's loopback, as on one machine, and its
  device keys live on Synapse's volume;
- group sync, when it serves this homeserver, as a Deployment;
- PostgreSQL as a StatefulSet when the homeserver is on `sqlite` and
  `bundled_postgres` is on; a `postgresql://` URL is used as is;
- with `workers:`, a StatefulSet per worker kind, Redis, and Ingresses that
  route endpoints to them (`homeport.targets.kubernetes_workers`);
- NetworkPolicies: Synapse takes traffic from the ingress controller, from
  a sibling's namespace only where the policy lets that sibling federate
  with it, and on its TLS listener from Homeport's services; PostgreSQL
  only from Synapse.

In `<namespace_prefix>services`: the admin website and the conference
service as Deployments behind Ingresses (the website only from
`admin_from`), and Homeport's store as a bundled PostgreSQL when the file
keeps it on SQLite. Every Homeport pod loads the same homeport.yaml,
rendered for the cluster (`homeport.targets.cluster`), and gets only the
files of the data folder its work needs.

Pure: the model, versions and the secrets' values in; file names and texts out.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.kubernetes import Kubernetes
from homeport.config.types import parse_postgres_url
from homeport.errors import HomeportError
from homeport.homeserver import workers as workers_module
from homeport.homeserver.log_config import render_log_config
from homeport.homeserver.render import render_homeserver
from homeport.layout import DeploymentLayout
from homeport.policy.effective import federation_allowed
from homeport.targets import k8s
from homeport.targets.cluster import (
    CONFIG,
    DATA,
    cluster_path,
    in_cluster,
    namespace_of,
    role_files,
    roles,
    services_namespace,
    synapse_service_host,
)
from homeport.targets.kubernetes_pods import (
    ClusterInputs,
    HomeportPods,
    HomeserverSecrets,
    kustomization,
    local_probe,
    tls_secret,
)
from homeport.targets.kubernetes_services import Services
from homeport.targets.kubernetes_workers import (
    PROCESS,
    REPLICATION_PORT,
    WorkerManifests,
    redis_settings,
)
from homeport.targets.kubernetes_workers import (
    main_settings as worker_main_settings,
)
from homeport.targets.nginx import max_upload_bytes

__all__ = ["ClusterInputs", "HomeserverSecrets", "render_kubernetes"]

SYNAPSE_PORT = 8008
SYNAPSE_UID = 991  # the user of Synapse's own image
CONFIG_DIR = PurePosixPath("/config")
SECRETS = PurePosixPath("/secrets")
CA = PurePosixPath("/etc/homeport/ca")


def synapse_image(kube: Kubernetes, synapse_version: str) -> str:
    """Synapse's image with Homeport's module installed (docs/deployment.md builds it)."""
    return kube.synapse_image or f"homeport-synapse:{synapse_version}"


def synapse_settings(
    deployment: Deployment,
    name: str,
    kube: Kubernetes,
    postgres_password: str,
    redis_password: str = "",
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """homeserver.yaml for the pod: (public part for the ConfigMap, secret files by name).

    The same rendering as on one machine, from the cluster's model (data
    folder at /data); then a plain HTTP listener for the Ingress and a TLS
    one for Homeport's services, logs to the console, and the database
    section (which may hold a password) in the Secret. With workers: the
    replication listener on the pod's addresses, the instance map naming
    Services, and Redis (its password) in the Secret too.
    """
    cluster = in_cluster(deployment, kube, "")
    layout = DeploymentLayout(Path(str(DATA)))
    config = render_homeserver(cluster, name, layout)
    hs = cluster.homeservers[name]
    files = layout.homeserver(name)
    public = dict(config["listeners"][0])
    public.update(port=SYNAPSE_PORT, bind_addresses=["0.0.0.0"], tls=False, x_forwarded=True)  # noqa: S104
    private = {
        "port": hs.port,
        "bind_addresses": ["0.0.0.0"],  # noqa: S104 - the pod's; a NetworkPolicy guards it
        "type": "http",
        "tls": True,
        "x_forwarded": False,
        "resources": [{"names": ["client"], "compress": False}],
    }
    config["listeners"] = [public, private]
    secret: dict[str, dict[str, Any]] = {}
    # One machine's Redis (its URL may hold a password) is not the cluster's.
    config.pop("redis", None)
    if hs.workers.count:
        ns = namespace_of(kube, name)
        config.update(
            worker_main_settings(cluster, name, files, ns, synapse_service_host(kube, name))
        )
        config["worker_replication_secret_path"] = str(SECRETS / "replication_secret")
        config["listeners"].append(
            workers_module.replication_listener(REPLICATION_PORT, "0.0.0.0")  # noqa: S104
        )
        secret["redis.yaml"] = {"redis": redis_settings(kube, ns, redis_password)}
    config["tls_certificate_path"] = str(SECRETS / "listener.crt")
    config["tls_private_key_path"] = str(SECRETS / "listener.key")
    config.pop("ip_range_whitelist", None)
    config["log_config"] = str(CONFIG_DIR / "log.yaml")
    for key, file in (
        ("signing_key_path", "signing.key"),
        ("registration_shared_secret_path", "registration_shared_secret"),
        ("macaroon_secret_key_path", "macaroon_secret_key"),
        ("form_secret_path", "form_secret"),
    ):
        config[key] = str(SECRETS / file)
    config["media_store_path"] = str(files.media_store)
    # Synapse serves the well-knowns the Ingress routes to it (nginx does on one machine).
    config["serve_server_wellknown"] = True
    config["serve_client_wellknown"] = True
    if kube.cert_manager_issuer is not None:
        config.pop("federation_custom_ca_list", None)  # public certificates: system trust
    else:
        config["federation_custom_ca_list"] = [
            str(CA / "ca.crt"),
            *(str(CA / f"trusted-{i}.crt") for i, _ in enumerate(deployment.trusted_ca_files)),
        ]
    database = {"database": config.pop("database")}
    if deployment.homeservers[name].database == "sqlite" and kube.bundled_postgres:
        database["database"] = {
            "name": "psycopg2",
            "txn_limit": 10000,
            "args": {
                "user": "synapse",
                "password": postgres_password,
                "database": "synapse",
                "host": "postgres",
                "port": 5432,
                "cp_min": 5,
                "cp_max": 10,
            },
        }
    elif deployment.homeservers[name].database == "sqlite":
        database["database"]["args"]["database"] = str(files.sqlite_database)
    return config, {"database.yaml": database, **secret}


def _log_config() -> dict[str, Any]:
    """The same format as on one machine, to the console (the cluster collects it)."""
    config = render_log_config(DeploymentLayout(Path(str(DATA))).homeserver("any"))
    config["handlers"] = {"console": {"class": "logging.StreamHandler", "formatter": "precise"}}
    config["root"] = {"level": "INFO", "handlers": ["console"]}
    return config


class _Base:
    """The manifests of one homeserver's namespace."""

    def __init__(self, deployment: Deployment, name: str, inputs: ClusterInputs) -> None:
        assert deployment.kubernetes is not None
        self.deployment = deployment
        self.kube = deployment.kubernetes
        self.name = name
        self.hs: Homeserver = deployment.homeservers[name]
        self.ns = namespace_of(self.kube, name)
        self.inputs = inputs
        self.secrets = inputs.homeservers[name]
        self.config, self.secret_files = synapse_settings(
            deployment, name, self.kube, self.secrets.postgres_password, self.secrets.redis_password
        )
        self.bundled = self.hs.database == "sqlite" and self.kube.bundled_postgres
        self.roles = [r for r in roles(deployment) if r.homeserver == name]
        self.pods = HomeportPods(deployment, inputs, self.ns)
        self.audit = next((r for r in self.roles if r.name.startswith("audit-")), None)
        self.groupsync = next((r for r in self.roles if r.name == "groupsync"), None)
        self.workers = self.worker_manifests() if self.hs.workers.count else None

    def worker_manifests(self) -> WorkerManifests:
        cluster = in_cluster(self.deployment, self.kube, "")
        return WorkerManifests(
            cluster=cluster,
            kube=self.kube,
            name=self.name,
            namespace=self.ns,
            files=DeploymentLayout(Path(str(DATA))).homeserver(self.name),
            container=self.process_container,
            volumes=self.process_volumes(),
            config_dir=CONFIG_DIR,
            secret_config=self.secret_config_paths(),
            media_store=str(self.config["media_store_path"]),
            public_sources=self.public_sources(),
            ingress_annotations=self.ingress_annotations(),
            hosts=self.hosts(),
            redis_password=self.secrets.redis_password,
        )

    def config_map(self) -> dict[str, Any]:
        data = {
            "homeserver.yaml": yaml.safe_dump(self.config, sort_keys=False),
            "log.yaml": yaml.safe_dump(_log_config(), sort_keys=False),
        }
        if self.workers is not None:
            data.update(self.workers.config_files())
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": k8s.meta("synapse-config", self.ns, k8s.labels(self.name, "synapse")),
            "data": data,
        }

    def ca_config_map(self) -> dict[str, Any]:
        ca_files = self.inputs.ca_files
        data = {"ca.crt": ca_files[0]}
        data.update({f"trusted-{i}.crt": text for i, text in enumerate(ca_files[1:])})
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": k8s.meta("federation-ca", self.ns, k8s.labels(self.name, "synapse")),
            "data": data,
        }

    def synapse_files(self) -> dict[str, tuple[str, str]]:
        """Files of Synapse's Secret besides its keys: key -> (path in the pod, content).

        The audit bot's registration (it holds its tokens) and group sync's LDAP
        files, where the rendered homeserver.yaml expects them.
        """
        files: dict[str, tuple[str, str]] = {}
        if self.hs.audit_bot is not None:
            registration = DeploymentLayout(self.deployment.data_dir).audit(self.name).registration
            files["audit-registration.yaml"] = (
                str(cluster_path(self.deployment, registration)),
                self.inputs.files[registration],
            )
        sync = self.deployment.group_sync
        if sync is not None:
            for path in (sync.ldap.ca_file, sync.ldap.bind_password_file):
                if path is not None:
                    target = cluster_path(self.deployment, path)
                    files[target.name] = (str(target), self.inputs.files[path])
        return files

    def secret(self) -> dict[str, Any]:
        s = self.secrets
        data = {
            "signing.key": s.signing_key,
            "registration_shared_secret": s.registration_shared_secret,
            "macaroon_secret_key": s.macaroon_secret_key,
            "form_secret": s.form_secret,
            "listener.crt": s.listener[0],
            "listener.key": s.listener[1],
        }
        data.update(
            {key: yaml.safe_dump(part, sort_keys=False) for key, part in self.secret_files.items()}
        )
        if self.workers is not None:
            data["replication_secret"] = s.replication_secret
        data.update({key: text for key, (_, text) in self.synapse_files().items()})
        if self.bundled:
            data["postgres_password"] = s.postgres_password
        return k8s.secret("synapse-secrets", self.ns, k8s.labels(self.name, "synapse"), data)

    def hosts(self) -> dict[str, str]:
        """Each host of the Ingress and the Secret holding its certificate."""
        hosts = {self.hs.served_host: "synapse-tls"}
        if self.hs.tls_name != self.hs.served_host:
            hosts[self.hs.tls_name] = "synapse-tls-server-name"
        return hosts

    def tls_secrets(self) -> list[dict[str, Any]]:
        return [
            tls_secret(secret, self.ns, k8s.labels(self.name, "synapse"), *self.secrets.tls[host])
            for host, secret in self.hosts().items()
        ]

    def secret_config_paths(self) -> list[str]:
        """`--config-path` arguments of the Secret's parts, after homeserver.yaml."""
        paths: list[str] = []
        for key in self.secret_files:
            paths += ["--config-path", str(SECRETS / key)]
        return paths

    def process_container(
        self,
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
            for key, (path, _) in self.synapse_files().items()
        ]
        if self.kube.cert_manager_issuer is None:
            mounts.append({"name": "federation-ca", "mountPath": str(CA), "readOnly": True})
        return {
            "name": name,
            "image": synapse_image(self.kube, self.inputs.synapse_version),
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

    def process_volumes(self) -> list[dict[str, Any]]:
        """The volumes `process_container`'s mounts name."""
        volumes: list[dict[str, Any]] = [
            {"name": "config", "configMap": {"name": "synapse-config"}},
            {
                "name": "secrets",
                "secret": {"secretName": "synapse-secrets", "defaultMode": 0o440},
            },
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ]
        if self.kube.cert_manager_issuer is None:
            volumes.append({"name": "federation-ca", "configMap": {"name": "federation-ca"}})
        return volumes

    def synapse_container(self) -> dict[str, Any]:
        # Synapse merges its files: the ConfigMap's, then the Secret's parts (the
        # database section, and Redis with workers: they hold passwords).
        command = [
            "python",
            "-m",
            "synapse.app.homeserver",
            "--config-path",
            str(CONFIG_DIR / "homeserver.yaml"),
            *self.secret_config_paths(),
            "--no-secrets-in-config",
        ]
        ports = {"http": SYNAPSE_PORT, "homeport": self.hs.port}
        if self.workers is not None:
            ports["replication"] = REPLICATION_PORT
        resources = {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        }
        container = self.process_container("synapse", command, ports, "http", resources)
        root = DATA / "homeservers" / self.name
        container["volumeMounts"] = [
            {"name": "data", "mountPath": str(root)},
            *container["volumeMounts"],
        ]
        return container

    def audit_containers(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The audit bot beside Synapse: (init containers, containers)."""
        if self.audit is None or self.hs.audit is None:
            return [], []
        state = {
            "name": "data",
            "mountPath": str(DATA / "audit" / self.name),
            "subPath": "audit",
        }
        command = ["audit", "run", "-c", str(CONFIG), self.name]
        bot = self.pods.container(
            "audit-bot",
            command,
            [self.audit],
            {
                "livenessProbe": {**local_probe(self.hs.audit.port), "failureThreshold": 4},
                "resources": {
                    "requests": {"cpu": "50m", "memory": "128Mi"},
                    "limits": {"memory": "512Mi"},
                },
            },
        )
        bot["volumeMounts"] = [*bot["volumeMounts"], state]
        init = self.pods.init_containers([self.audit], [state])
        # Files the bot may hold in its keys folder (crypto store) stay across restarts;
        # Synapse's container runs as 991, the bot's as 10001: the volume's group lets both in.
        return init, [bot]

    def synapse(self) -> dict[str, Any]:
        labels = k8s.labels(self.name, "synapse")
        init, sidecars = self.audit_containers()
        volumes = self.process_volumes()
        if self.audit is not None:
            names = {v["name"] for v in volumes}
            volumes += [v for v in self.pods.volumes([self.audit]) if v["name"] not in names]
        spec: dict[str, Any] = {
            "automountServiceAccountToken": False,
            "securityContext": {"fsGroup": SYNAPSE_UID},
            "containers": [self.synapse_container(), *sidecars],
            "volumes": volumes,
        }
        if init:
            spec["initContainers"] = init
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": k8s.meta("synapse", self.ns, labels),
            "spec": {
                "serviceName": "synapse",
                "replicas": 1,  # one main process; workers are StatefulSets of their own
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": {**labels, **PROCESS}}, "spec": spec},
                "volumeClaimTemplates": [
                    k8s.volume_claim(self.kube, "data", self.kube.media_storage)
                ],
            },
        }

    def group_sync(self) -> dict[str, Any] | None:
        sync = self.deployment.group_sync
        if self.groupsync is None or sync is None:
            return None
        container = self.pods.container(
            "group-sync",
            ["groupsync", "watch", "-c", str(CONFIG)],
            [self.groupsync],
            {
                "livenessProbe": {**local_probe(sync.port), "failureThreshold": 4},
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"memory": "1Gi"},
                },
            },
        )
        return self.pods.deployment_object("group-sync", self.name, [container], [self.groupsync])

    def ingress_annotations(self) -> dict[str, str]:
        annotations = {
            "nginx.ingress.kubernetes.io/proxy-body-size": str(max_upload_bytes(self.hs)),
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
        }
        if self.kube.cert_manager_issuer is not None:
            annotations["cert-manager.io/cluster-issuer"] = self.kube.cert_manager_issuer
        return annotations

    def ingress(self) -> dict[str, Any]:
        hosts = self.hosts()
        annotations = self.ingress_annotations()
        if self.workers is not None:
            # The workers' Ingresses route by regex, which ingress-nginx applies to every
            # path of their hosts: said here too, so that it reads as it works.
            annotations["nginx.ingress.kubernetes.io/use-regex"] = "true"
        # Synapse's server well-known names the server name's host on 443, so
        # that host carries the APIs too. /_synapse/admin and /_homeport/ are
        # not routed: never on the Internet.
        prefixes = ["/_matrix", "/_synapse/client", "/.well-known/matrix"]
        return k8s.ingress(
            "synapse",
            self.ns,
            k8s.labels(self.name, "synapse"),
            annotations,
            self.kube.ingress_class,
            hosts,
            [(prefix, "synapse", SYNAPSE_PORT) for prefix in prefixes],
        )

    def public_sources(self) -> list[dict[str, Any]]:
        """Who reaches what the Ingress serves: its controller, and the siblings' namespaces
        where the policy lets them federate with this homeserver."""
        allowed = [
            other
            for other in self.deployment.homeservers
            if other != self.name and federation_allowed(self.deployment, other, self.name)
        ]
        public = [k8s.from_namespace(self.kube.ingress_namespace)]
        return public + [k8s.from_namespace(namespace_of(self.kube, other)) for other in allowed]

    def service_ports(self) -> dict[str, int]:
        ports = {"http": SYNAPSE_PORT, "homeport": self.hs.port}
        if self.workers is not None:
            ports["replication"] = REPLICATION_PORT
        return ports

    def network_policies(self) -> list[dict[str, Any]]:
        synapse = k8s.labels(self.name, "synapse")
        # The TLS listener (the admin API): Homeport's pods, here and in the services'.
        private = [{"podSelector": {}}, k8s.from_namespace(services_namespace(self.kube))]
        rules = [(self.public_sources(), [SYNAPSE_PORT]), (private, [self.hs.port])]
        if self.workers is not None:
            processes = {**PROCESS, "app.kubernetes.io/instance": self.name}
            rules.append(([{"podSelector": {"matchLabels": processes}}], [REPLICATION_PORT]))
        policies = [k8s.network_policy("synapse", self.ns, synapse, rules)]
        if self.bundled:
            policies.append(
                k8s.network_policy(
                    "postgres",
                    self.ns,
                    k8s.labels(self.name, "postgres"),
                    [([{"podSelector": {"matchLabels": synapse}}], [5432])],
                )
            )
        if self.workers is not None:
            policies += self.workers.network_policies()
        return policies

    def files(self) -> dict[str, str]:
        files = {
            "namespace.yaml": k8s.dump(k8s.namespace(self.ns, self.name, "homeserver")),
            "synapse-config.yaml": k8s.dump(self.config_map()),
            "synapse-secrets.yaml": k8s.dump(self.secret()),
            "synapse.yaml": k8s.dump(
                self.synapse(),
                k8s.service(
                    "synapse", self.ns, k8s.labels(self.name, "synapse"), self.service_ports()
                ),
            ),
            "ingress.yaml": k8s.dump(self.ingress()),
            "network-policy.yaml": k8s.dump(*self.network_policies()),
        }
        if self.kube.cert_manager_issuer is None:
            files["federation-ca.yaml"] = k8s.dump(self.ca_config_map())
            files["synapse-tls-secrets.yaml"] = k8s.dump(*self.tls_secrets())
        if self.bundled:
            files["postgres.yaml"] = k8s.dump(
                k8s.postgres(self.kube, self.ns, self.name, "synapse", "synapse-secrets"),
                k8s.service("postgres", self.ns, k8s.labels(self.name, "postgres"), {"main": 5432}),
            )
        if self.roles:
            files["homeport-secrets.yaml"] = k8s.dump(*self.pods.secrets(self.roles, self.name))
        group_sync = self.group_sync()
        if group_sync is not None:
            files["group-sync.yaml"] = k8s.dump(group_sync)
        if self.workers is not None:
            files.update(self.workers.manifests(self.kube.ingress_class))
        return {f"{self.name}/{file}": text for file, text in files.items()} | {
            f"{self.name}/kustomization.yaml": kustomization(self.ns, files)
        }


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
        files.update(_Base(deployment, name, inputs).files())
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
    return files


def needed_files(deployment: Deployment) -> list[Path]:
    """The files of this machine the manifests carry for Homeport's services and Synapse."""
    paths: list[Path] = []
    for role in roles(deployment):
        paths += role_files(deployment, role)
    sync = deployment.group_sync
    if sync is not None:
        paths += [p for p in (sync.ldap.ca_file, sync.ldap.bind_password_file) if p is not None]
    return sorted(set(paths))


def service_account(hs: Homeserver, stored: str | None, password: str) -> str:
    """The credentials the pods share: those of one machine if any, else a new account's."""
    if stored:
        return stored
    user_id = f"@homeport:{hs.server_name}"
    return json.dumps({"user_id": user_id, "password": password})


def database_password(hs: Homeserver) -> str | None:
    """The password in a homeserver's postgresql:// URL, if any (it goes to the Secret)."""
    if hs.database == "sqlite":
        return None
    return parse_postgres_url(hs.database).password
