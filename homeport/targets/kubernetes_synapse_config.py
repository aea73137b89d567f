"""Synapse's homeserver.yaml in a homeserver's pod, and where the pod keeps its files. Pure.

The same rendering as on one machine, from the model as the pods see it
(`homeport.targets.cluster`), with what the cluster changes: the listeners
(plain HTTP for the Ingress, TLS for Homeport's services), logs to the
console, the keys and the parts that hold passwords read from the Secret.
"""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path, PurePosixPath
from typing import Any

from homeport.capabilities import homeserver_config
from homeport.config.deployment import Deployment
from homeport.config.kubernetes import Kubernetes
from homeport.homeserver import workers as workers_module
from homeport.homeserver.log_config import render_log_config
from homeport.layout import DeploymentLayout
from homeport.targets.cluster import DATA, in_cluster, namespace_of, synapse_service_host
from homeport.targets.kubernetes_workers import REPLICATION_PORT, redis_settings
from homeport.targets.kubernetes_workers import main_settings as worker_main_settings

SYNAPSE_PORT = 8008
CONFIG_DIR = PurePosixPath("/config")
SECRETS = PurePosixPath("/secrets")
CA = PurePosixPath("/etc/homeport/ca")


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
    config = homeserver_config(cluster, name, layout)
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
    # Siblings federate through the ingress controller: Synapse connects to a private
    # address only where allowed (one machine allows each sibling's own address).
    ingress = kube.ingress_address
    if ingress is not None and not ip_address(ingress).is_global:
        config["ip_range_whitelist"] = [str(ingress)]
    else:
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


def log_config() -> dict[str, Any]:
    """The same format as on one machine, to the console (the cluster collects it)."""
    config = render_log_config(DeploymentLayout(Path(str(DATA))).homeserver("any"))
    config["handlers"] = {"console": {"class": "logging.StreamHandler", "formatter": "precise"}}
    config["root"] = {"level": "INFO", "handlers": ["console"]}
    return config
