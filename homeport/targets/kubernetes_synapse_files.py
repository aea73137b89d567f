"""What Synapse's pods read in a homeserver's namespace: ConfigMaps and Secrets. Pure.

`synapse-config` (homeserver.yaml, the log config, each worker's file) holds
nothing secret; `synapse-secrets` holds the keys, the secrets, the parts of
homeserver.yaml with passwords in them and the files the capabilities' pieces
need (`Capability.synapse_pod_files`: the audit bot's registration, directory
login's LDAP files). Without
cert-manager, `federation-ca` (the CAs Synapse trusts for federation) and a
TLS Secret for each host of the Ingress.
"""

from __future__ import annotations

from typing import Any

import yaml

from homeport.capabilities import CAPABILITIES
from homeport.layout import DeploymentLayout
from homeport.targets import k8s
from homeport.targets.cluster import cluster_path
from homeport.targets.kubernetes_namespace import HomeserverNamespace
from homeport.targets.kubernetes_pods import tls_secret
from homeport.targets.kubernetes_synapse_config import SECRETS, log_config


def config_map(ns: HomeserverNamespace, worker_files: dict[str, str]) -> dict[str, Any]:
    data = {
        "homeserver.yaml": yaml.safe_dump(ns.config, sort_keys=False),
        "log.yaml": yaml.safe_dump(log_config(), sort_keys=False),
    }
    data.update(worker_files)
    return {
        **k8s.core("ConfigMap", "synapse-config", ns.namespace, ns.labels("synapse")),
        "data": data,
    }


def ca_config_map(ns: HomeserverNamespace) -> dict[str, Any]:
    ca_files = ns.inputs.ca_files
    data = {"ca.crt": ca_files[0]}
    data.update({f"trusted-{i}.crt": text for i, text in enumerate(ca_files[1:])})
    return {
        **k8s.core("ConfigMap", "federation-ca", ns.namespace, ns.labels("synapse")),
        "data": data,
    }


def synapse_files(ns: HomeserverNamespace) -> dict[str, tuple[str, str]]:
    """Files of Synapse's Secret besides its keys: key -> (path in the pod, content).

    What the capabilities' pieces of its homeserver.yaml name (the audit bot's
    registration, directory login's LDAP files), where that file expects them.
    """
    deployment = ns.deployment
    layout = DeploymentLayout(deployment.data_dir)
    files: dict[str, tuple[str, str]] = {}
    for capability in CAPABILITIES:
        for needed in capability.synapse_pod_files(deployment, ns.name, layout):
            target = cluster_path(deployment, needed.path)
            files[needed.key or target.name] = (str(target), ns.inputs.files[needed.path])
    return files


def secret_config_paths(ns: HomeserverNamespace) -> list[str]:
    """`--config-path` arguments of the Secret's parts, after homeserver.yaml."""
    paths: list[str] = []
    for key in ns.secret_files:
        paths += ["--config-path", str(SECRETS / key)]
    return paths


def synapse_secret(ns: HomeserverNamespace) -> dict[str, Any]:
    s = ns.secrets
    data = {
        "signing.key": s.signing_key,
        "registration_shared_secret": s.registration_shared_secret,
        "macaroon_secret_key": s.macaroon_secret_key,
        "form_secret": s.form_secret,
        "listener.crt": s.listener[0],
        "listener.key": s.listener[1],
    }
    data.update(
        {key: yaml.safe_dump(part, sort_keys=False) for key, part in ns.secret_files.items()}
    )
    if ns.has_workers:
        data["replication_secret"] = s.replication_secret
    data.update({key: text for key, (_, text) in synapse_files(ns).items()})
    if ns.bundled_postgres:
        data["postgres_password"] = s.postgres_password
    return k8s.secret("synapse-secrets", ns.namespace, ns.labels("synapse"), data)


def tls_secrets(ns: HomeserverNamespace) -> list[dict[str, Any]]:
    return [
        tls_secret(secret, ns.namespace, ns.labels("synapse"), *ns.secrets.tls[host])
        for host, secret in ns.hosts().items()
    ]
