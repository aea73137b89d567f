"""Kubernetes manifests: one namespace per homeserver, each a kustomize base of its own.

Per homeserver, in namespace `<namespace_prefix><name>`:

- Synapse as a StatefulSet with its volume (media; SQLite when no PostgreSQL),
  a Service, and an Ingress for its public host (and, when the APIs live
  elsewhere, the server name's host, for the well-knowns Synapse serves);
- its `homeserver.yaml` in a ConfigMap, rendered by the same code as on one
  machine; the database section, the keys and the secrets in Secrets, with
  the values generated once in the data folder (the same keys as on one
  machine: a homeserver moved to the cluster keeps its identity);
- PostgreSQL as a StatefulSet when the homeserver is on `sqlite` and
  `bundled_postgres` is on; a `postgresql://` URL is used as is;
- a NetworkPolicy: Synapse takes traffic from the ingress controller, and
  from a sibling's namespace only where the policy lets that sibling
  federate with it; PostgreSQL only from Synapse.

Synapse listens in plain HTTP inside the pod network; TLS ends at the
Ingress (certificates from cert-manager, or the ones Homeport uses on one
machine, as Secrets). Pure: the model, Synapse's version and the secrets'
values in; file names and texts out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.kubernetes import Kubernetes
from homeport.config.types import parse_postgres_url
from homeport.layout import DeploymentLayout
from homeport.policy.effective import federation_allowed
from homeport.synapse.render import render_homeserver, render_log_config
from homeport.targets.nginx import max_upload_bytes

SYNAPSE_PORT = 8008
SYNAPSE_UID = 991  # the user of Synapse's own image
POSTGRES_UID = 999  # the user of the postgres image
DATA = PurePosixPath("/data")  # Synapse's volume: the data folder's layout, as on one machine
CONFIG = PurePosixPath("/config")
SECRETS = PurePosixPath("/secrets")
CA = PurePosixPath("/etc/homeport/ca")


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


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class _Dumper(yaml.SafeDumper):
    """Files inside ConfigMaps as readable blocks, not escaped one-liners; no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _string)


def _dump(*documents: dict[str, Any]) -> str:
    header = "# Rendered by Homeport from homeport.yaml: `homeport render --target kubernetes`.\n"
    return header + "---\n".join(
        yaml.dump(d, Dumper=_Dumper, sort_keys=False, default_flow_style=False) for d in documents
    )


def namespace_of(k8s: Kubernetes, name: str) -> str:
    return f"{k8s.namespace_prefix}{name}"


def synapse_image(k8s: Kubernetes, synapse_version: str) -> str:
    """Synapse's image with Homeport's module installed (docs/deployment.md builds it)."""
    return k8s.synapse_image or f"homeport-synapse:{synapse_version}"


def _labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/part-of": "homeport",
    }


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels}


def _for_the_cluster(deployment: Deployment) -> Deployment:
    """The model Synapse is rendered from in the cluster: without what stays behind.

    The audit bots and group sync's LDAP login need Homeport's services in the
    cluster, which this target does not run yet (the CLI says so).
    """
    homeservers = {
        name: hs.model_copy(
            update={
                "audit": None,
                # Behind the Ingress on 443, whatever port the model gives on one machine.
                "public_baseurl": hs.public_baseurl or f"https://{hs.served_host}",
            }
        )
        for name, hs in deployment.homeservers.items()
    }
    return deployment.model_copy(update={"homeservers": homeservers, "group_sync": None})


def synapse_settings(
    deployment: Deployment, name: str, k8s: Kubernetes, postgres_password: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """homeserver.yaml for the pod: (public part for the ConfigMap, secret part).

    The same rendering as on one machine, under the volume's paths; then the
    listener is plain HTTP behind the Ingress, logs go to the console, and the
    database section (which may hold a password) moves to the Secret.
    """
    cluster = _for_the_cluster(deployment)
    layout = DeploymentLayout(Path(str(DATA)))
    config = render_homeserver(cluster, name, layout)
    hs = cluster.homeservers[name]
    files = layout.homeserver(name)
    listener = dict(config["listeners"][0])
    listener.update(port=SYNAPSE_PORT, bind_addresses=["0.0.0.0"], tls=False, x_forwarded=True)  # noqa: S104
    config["listeners"] = [listener]
    for key in ("tls_certificate_path", "tls_private_key_path", "ip_range_whitelist"):
        config.pop(key, None)
    config["log_config"] = str(CONFIG / "log.yaml")
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
    if k8s.cert_manager_issuer is not None:
        config.pop("federation_custom_ca_list", None)  # public certificates: system trust
    else:
        config["federation_custom_ca_list"] = [
            str(CA / "ca.crt"),
            *(str(CA / f"trusted-{i}.crt") for i, _ in enumerate(deployment.trusted_ca_files)),
        ]
    secret = {"database": config.pop("database")}
    if hs.database == "sqlite" and k8s.bundled_postgres:
        secret["database"] = {
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
    elif hs.database == "sqlite":
        secret["database"]["args"]["database"] = str(files.sqlite_database)
    return config, secret


def _log_config() -> dict[str, Any]:
    """The same format as on one machine, to the console (the cluster collects it)."""
    config = render_log_config(DeploymentLayout(Path(str(DATA))).homeserver("any"))
    config["handlers"] = {"console": {"class": "logging.StreamHandler", "formatter": "precise"}}
    config["root"] = {"level": "INFO", "handlers": ["console"]}
    return config


class _Base:
    """The manifests of one homeserver's namespace."""

    def __init__(
        self,
        deployment: Deployment,
        name: str,
        synapse_version: str,
        secrets: HomeserverSecrets,
        ca_files: list[str],
    ) -> None:
        assert deployment.kubernetes is not None
        self.deployment = deployment
        self.k8s = deployment.kubernetes
        self.name = name
        self.hs: Homeserver = deployment.homeservers[name]
        self.ns = namespace_of(self.k8s, name)
        self.version = synapse_version
        self.secrets = secrets
        self.ca_files = ca_files
        self.config, self.secret_config = synapse_settings(
            deployment, name, self.k8s, secrets.postgres_password
        )
        self.bundled = self.hs.database == "sqlite" and self.k8s.bundled_postgres

    def namespace(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.ns, "labels": _labels(self.name, "homeserver")},
        }

    def config_map(self) -> dict[str, Any]:
        data = {
            "homeserver.yaml": yaml.safe_dump(self.config, sort_keys=False),
            "log.yaml": yaml.safe_dump(_log_config(), sort_keys=False),
        }
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("synapse-config", self.ns, _labels(self.name, "synapse")),
            "data": data,
        }

    def ca_config_map(self) -> dict[str, Any]:
        data = {"ca.crt": self.ca_files[0]}
        data.update({f"trusted-{i}.crt": text for i, text in enumerate(self.ca_files[1:])})
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("federation-ca", self.ns, _labels(self.name, "synapse")),
            "data": data,
        }

    def secret(self) -> dict[str, Any]:
        s = self.secrets
        data = {
            "signing.key": s.signing_key,
            "registration_shared_secret": s.registration_shared_secret,
            "macaroon_secret_key": s.macaroon_secret_key,
            "form_secret": s.form_secret,
            "database.yaml": yaml.safe_dump(self.secret_config, sort_keys=False),
        }
        if self.bundled:
            data["postgres_password"] = s.postgres_password
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta("synapse-secrets", self.ns, _labels(self.name, "synapse")),
            "type": "Opaque",
            "data": {key: _b64(value) for key, value in data.items()},
        }

    def hosts(self) -> dict[str, str]:
        """Each host of the Ingress and the Secret holding its certificate."""
        hosts = {self.hs.served_host: "synapse-tls"}
        if self.hs.tls_name != self.hs.served_host:
            hosts[self.hs.tls_name] = "synapse-tls-server-name"
        return hosts

    def tls_secrets(self) -> list[dict[str, Any]]:
        secrets = []
        for host, secret in self.hosts().items():
            certificate, key = self.secrets.tls[host]
            secrets.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": _meta(secret, self.ns, _labels(self.name, "synapse")),
                    "type": "kubernetes.io/tls",
                    "data": {"tls.crt": _b64(certificate), "tls.key": _b64(key)},
                }
            )
        return secrets

    def _security(self, uid: int, read_only: bool = True) -> dict[str, Any]:
        return {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": read_only,
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }

    def _volume_claim(self, name: str, size: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        }
        if self.k8s.storage_class is not None:
            spec["storageClassName"] = self.k8s.storage_class
        return {"metadata": {"name": name}, "spec": spec}

    def synapse(self) -> dict[str, Any]:
        labels = _labels(self.name, "synapse")
        root = DATA / "homeservers" / self.name
        # Two files, as Synapse merges them: the ConfigMap, and the database
        # section (a password) from the Secret.
        command = [
            "python",
            "-m",
            "synapse.app.homeserver",
            "--config-path",
            str(CONFIG / "homeserver.yaml"),
            "--config-path",
            str(SECRETS / "database.yaml"),
            "--no-secrets-in-config",
        ]
        env = [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}]
        probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
        mounts = [
            {"name": "data", "mountPath": str(root)},
            {"name": "config", "mountPath": str(CONFIG), "readOnly": True},
            {"name": "secrets", "mountPath": str(SECRETS), "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        ]
        volumes: list[dict[str, Any]] = [
            {"name": "config", "configMap": {"name": "synapse-config"}},
            {
                "name": "secrets",
                "secret": {"secretName": "synapse-secrets", "defaultMode": 0o440},
            },
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ]
        if self.k8s.cert_manager_issuer is None:
            mounts.append({"name": "federation-ca", "mountPath": str(CA), "readOnly": True})
            volumes.append({"name": "federation-ca", "configMap": {"name": "federation-ca"}})
        container = {
            "name": "synapse",
            "image": synapse_image(self.k8s, self.version),
            "command": command,
            "env": env,
            "ports": [{"name": "http", "containerPort": SYNAPSE_PORT}],
            "readinessProbe": probe,
            "livenessProbe": {**probe, "failureThreshold": 6},
            # A first start (or an upgrade) migrates the database: give it time.
            "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 120},
            "resources": {
                "requests": {"cpu": "250m", "memory": "512Mi"},
                "limits": {"memory": "2Gi"},
            },
            "securityContext": self._security(SYNAPSE_UID),
            "volumeMounts": mounts,
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta("synapse", self.ns, labels),
            "spec": {
                "serviceName": "synapse",
                "replicas": 1,  # one main process; workers are their own issue
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {"fsGroup": SYNAPSE_UID},
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
                "volumeClaimTemplates": [self._volume_claim("data", self.k8s.media_storage)],
            },
        }

    def service(self, component: str, port: int) -> dict[str, Any]:
        labels = _labels(self.name, component)
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(component, self.ns, labels),
            "spec": {
                "selector": labels,
                "ports": [{"name": "main", "port": port, "targetPort": port}],
            },
        }

    def postgres(self) -> dict[str, Any]:
        labels = _labels(self.name, "postgres")
        password = {"secretKeyRef": {"name": "synapse-secrets", "key": "postgres_password"}}
        container = {
            "name": "postgres",
            "image": self.k8s.postgres_image,
            "env": [
                {"name": "POSTGRES_USER", "value": "synapse"},
                {"name": "POSTGRES_DB", "value": "synapse"},
                {"name": "POSTGRES_PASSWORD", "valueFrom": password},
                # Synapse needs the C collation.
                {"name": "POSTGRES_INITDB_ARGS", "value": "--encoding=UTF8 --locale=C"},
                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
            ],
            "ports": [{"name": "postgres", "containerPort": 5432}],
            "readinessProbe": {
                "exec": {"command": ["pg_isready", "-U", "synapse", "-d", "synapse"]},
                "periodSeconds": 10,
            },
            "resources": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"memory": "1Gi"},
            },
            # PostgreSQL writes its socket and pid under /var/run/postgresql.
            "securityContext": self._security(POSTGRES_UID, read_only=False),
            "volumeMounts": [
                {"name": "pgdata", "mountPath": "/var/lib/postgresql/data"},
                {"name": "run", "mountPath": "/var/run/postgresql"},
                {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            ],
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta("postgres", self.ns, labels),
            "spec": {
                "serviceName": "postgres",
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {"fsGroup": POSTGRES_UID},
                        "containers": [container],
                        "volumes": [
                            {"name": "run", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
                "volumeClaimTemplates": [self._volume_claim("pgdata", self.k8s.postgres_storage)],
            },
        }

    def ingress(self) -> dict[str, Any]:
        hosts = self.hosts()
        annotations = {
            "nginx.ingress.kubernetes.io/proxy-body-size": str(max_upload_bytes(self.hs)),
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
        }
        if self.k8s.cert_manager_issuer is not None:
            annotations["cert-manager.io/cluster-issuer"] = self.k8s.cert_manager_issuer
        backend = {"service": {"name": "synapse", "port": {"number": SYNAPSE_PORT}}}
        # Synapse's server well-known names the server name's host on 443, so
        # that host carries the APIs too.
        prefixes = ["/_matrix", "/_synapse/client", "/.well-known/matrix"]
        paths = [{"path": p, "pathType": "Prefix", "backend": backend} for p in prefixes]
        rules = [{"host": host, "http": {"paths": paths}} for host in hosts]
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                **_meta("synapse", self.ns, _labels(self.name, "synapse")),
                "annotations": annotations,
            },
            "spec": {
                "ingressClassName": self.k8s.ingress_class,
                # /_synapse/admin and /_homeport/ are not routed: never on the Internet.
                "tls": [{"hosts": [h], "secretName": s} for h, s in hosts.items()],
                "rules": rules,
            },
        }

    def network_policies(self) -> list[dict[str, Any]]:
        synapse = _labels(self.name, "synapse")
        allowed = [
            other
            for other in self.deployment.homeservers
            if other != self.name and federation_allowed(self.deployment, other, self.name)
        ]
        sources: list[dict[str, Any]] = [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": self.k8s.ingress_namespace}
                }
            }
        ]
        sources += [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": namespace_of(self.k8s, other)}
                }
            }
            for other in allowed
        ]
        policies = [
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": _meta("synapse", self.ns, synapse),
                "spec": {
                    "podSelector": {"matchLabels": synapse},
                    "policyTypes": ["Ingress"],
                    "ingress": [
                        {"from": sources, "ports": [{"protocol": "TCP", "port": SYNAPSE_PORT}]}
                    ],
                },
            }
        ]
        if self.bundled:
            postgres = _labels(self.name, "postgres")
            policies.append(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": _meta("postgres", self.ns, postgres),
                    "spec": {
                        "podSelector": {"matchLabels": postgres},
                        "policyTypes": ["Ingress"],
                        "ingress": [
                            {
                                "from": [{"podSelector": {"matchLabels": synapse}}],
                                "ports": [{"protocol": "TCP", "port": 5432}],
                            }
                        ],
                    },
                }
            )
        return policies

    def files(self) -> dict[str, str]:
        files = {
            "namespace.yaml": _dump(self.namespace()),
            "synapse-config.yaml": _dump(self.config_map()),
            "synapse-secrets.yaml": _dump(self.secret()),
            "synapse.yaml": _dump(self.synapse(), self.service("synapse", SYNAPSE_PORT)),
            "ingress.yaml": _dump(self.ingress()),
            "network-policy.yaml": _dump(*self.network_policies()),
        }
        if self.k8s.cert_manager_issuer is None:
            files["federation-ca.yaml"] = _dump(self.ca_config_map())
            files["synapse-tls-secrets.yaml"] = _dump(*self.tls_secrets())
        if self.bundled:
            files["postgres.yaml"] = _dump(self.postgres(), self.service("postgres", 5432))
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": self.ns,
            "resources": sorted(files),
        }
        files["kustomization.yaml"] = _dump(kustomization)
        return {f"{self.name}/{file}": text for file, text in files.items()}


def render_kubernetes(
    deployment: Deployment,
    synapse_version: str,
    secrets: dict[str, HomeserverSecrets],
    ca_files: list[str],
) -> dict[str, str]:
    """Every homeserver's base under its name, and a top kustomization of them all.

    `ca_files`: the local CA's certificate, then each of `trusted_ca_files`.
    """
    assert deployment.kubernetes is not None
    files: dict[str, str] = {}
    for name in deployment.homeservers:
        files.update(_Base(deployment, name, synapse_version, secrets[name], ca_files).files())
    top = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{name}/" for name in deployment.homeservers],
    }
    files["kustomization.yaml"] = _dump(top)
    return files


def left_out(deployment: Deployment) -> list[str]:
    """What runs on one machine but not yet in these manifests."""
    missing = []
    if deployment.admin is not None:
        missing.append("the admin website")
    if any(hs.audit_bot for hs in deployment.homeservers.values()):
        missing.append("the audit bots")
    if deployment.group_sync is not None:
        missing.append("group sync (and its LDAP login)")
    if deployment.conference is not None:
        missing.append("the conference service")
    return missing


def database_password(hs: Homeserver) -> str | None:
    """The password in a homeserver's postgresql:// URL, if any (it goes to the Secret)."""
    if hs.database == "sqlite":
        return None
    return parse_postgres_url(hs.database).password
