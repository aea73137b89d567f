"""The deployment as Homeport's services see it inside a cluster. Pure.

The same homeport.yaml, rendered for the pods: the data folder at `/data`
(seeded from a Secret), the files it names under `/etc/homeport/files`,
each Synapse reached at its Service by name (`service_host`, its
certificate still checked against the server name), listeners on every
address of the pod, X-Forwarded-For trusted from the pod networks (where
the ingress controller connects from), and the store on PostgreSQL (a
bundled one when the file says `sqlite`: several pods share it).

Each service needs some files of the data folder; `role_files` says which,
so that no pod holds more secrets than its work needs (the CA's key is in
none of them).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import quote

import yaml

from homeport.capabilities import CAPABILITIES
from homeport.capability import ClusterRole
from homeport.config.deployment import Deployment
from homeport.config.kubernetes import Kubernetes
from homeport.config.paths import map_named_files, named_files
from homeport.config.proxy import Proxy
from homeport.layout import DeploymentLayout

DATA = PurePosixPath("/data")
FILES = PurePosixPath("/etc/homeport/files")
CONFIG = PurePosixPath("/config/homeport.yaml")
STORE_USER = "homeport"


def namespace_of(k8s: Kubernetes, name: str) -> str:
    return f"{k8s.namespace_prefix}{name}"


def services_namespace(k8s: Kubernetes) -> str:
    return f"{k8s.namespace_prefix}services"


def synapse_service_host(k8s: Kubernetes, name: str) -> str:
    return f"synapse.{namespace_of(k8s, name)}.svc.cluster.local"


def store_url(deployment: Deployment, k8s: Kubernetes, password: str) -> str:
    """The store the services share: the file's PostgreSQL, or the bundled one."""
    if deployment.store.database != "sqlite":
        return deployment.store.database
    host = f"postgres.{services_namespace(k8s)}.svc.cluster.local"
    return f"postgresql://{STORE_USER}:{quote(password, safe='')}@{host}:5432/{STORE_USER}"


def named_targets(deployment: Deployment) -> dict[Path, PurePosixPath]:
    """Each file homeport.yaml names (besides the data folder) -> its path in the pods."""
    return {path: FILES / label for label, path in named_files(deployment).items()}


def in_cluster(deployment: Deployment, k8s: Kubernetes, store_password: str) -> Deployment:
    """The model the pods load (from the Secret `homeport-config`)."""
    moved = map_named_files(deployment, lambda label, _path: Path(str(FILES / label)))
    homeservers = {
        name: hs.model_copy(
            update={
                "service_host": synapse_service_host(k8s, name),
                "public_baseurl": hs.public_baseurl or f"https://{hs.served_host}",
            }
        )
        for name, hs in moved.homeservers.items()
    }
    proxy = deployment.proxy or Proxy()
    proxy = proxy.model_copy(update={"forwarded_from": list(k8s.pod_networks)})
    cluster = moved.model_copy(
        update={
            "data_dir": Path(str(DATA)),
            "homeservers": homeservers,
            "proxy": proxy,
            "kubernetes": None,
            "store": deployment.store.model_copy(
                update={"database": store_url(deployment, k8s, store_password)}
            ),
        }
    )
    for capability in CAPABILITIES:
        cluster = capability.in_cluster(cluster)
    return cluster


def cluster_yaml(cluster: Deployment) -> str:
    """homeport.yaml for the pods: the whole model, every default written out."""
    data = cluster.model_dump(mode="json", exclude_none=True)
    header = (
        "# Rendered by Homeport for the cluster from the administrator's homeport.yaml\n"
        "# (`homeport render --target kubernetes`); edit that file, not this one.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False)


Role = ClusterRole  # one of Homeport's services in the cluster and the files it needs


def roles(deployment: Deployment) -> list[Role]:
    layout = DeploymentLayout(deployment.data_dir)
    return [r for c in CAPABILITIES for r in c.cluster_roles(deployment, layout)]


def role_files(deployment: Deployment, role: Role) -> list[Path]:
    """The files of this machine a role's pods get (data folder and named files)."""
    layout = DeploymentLayout(deployment.data_dir)
    files = [layout.ca_certificate, *deployment.trusted_ca_files, *role.files]
    for name in reaches(deployment, role):
        files.append(layout.homeserver(name).registration_shared_secret)
    return files


def service_account_path(name: str) -> PurePosixPath:
    """Where the pods find the service account's credentials of homeserver `name`."""
    return DATA / "homeservers" / name / "keys" / "service_account.json"


def reaches(deployment: Deployment, role: Role) -> list[str]:
    """The homeservers whose admin API a role uses (it gets their service account)."""
    return list(role.reaches)


def cluster_path(deployment: Deployment, path: Path) -> PurePosixPath:
    """Where a file of this machine (data folder or named) is in the pods."""
    named = named_targets(deployment)
    if path in named:
        return named[path]
    return DATA / PurePosixPath(path.relative_to(deployment.data_dir).as_posix())
