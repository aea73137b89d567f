"""What the Kubernetes manifests carry from this machine: read from the data folder.

The manifests are rendered purely (`homeport.targets.kubernetes`) from the
model and `ClusterInputs`; this module gathers those inputs. The data folder
keeps every key and secret of one machine (a homeserver moved to the cluster
keeps its signing key: its identity), and the values only the cluster needs
(the bundled PostgreSQL's and Redis's passwords, a service account when this
machine has none) are made there once, as `homeport up` makes its own.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from homeport import __version__
from homeport.capabilities import CAPABILITIES
from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.files import read_or_create_private
from homeport.layout import DeploymentLayout
from homeport.targets.cluster import role_files, roles
from homeport.targets.kubernetes_pods import ClusterInputs, HomeserverSecrets


def synapse_version() -> str:
    from synapse import __version__

    return __version__.split()[0]


def _made_once(path: Path) -> str:
    """The secret in `path`, a new one written there first if there is none."""
    return read_or_create_private(path, secrets.token_urlsafe(32).encode()).decode().strip()


def homeserver_secrets(
    deployment: Deployment, layout: DeploymentLayout, name: str
) -> HomeserverSecrets:
    """One homeserver's keys, secrets and certificates, as the data folder holds them."""
    hs = deployment.homeservers[name]
    files = layout.homeserver(name)
    postgres_password = _made_once(layout.kubernetes_postgres_password(name))
    if hs.tls is not None:
        pair = (hs.tls.certificate.read_text(), hs.tls.key.read_text())
        tls = {hs.tls_name: pair, hs.served_host: pair}
        listener = pair
    else:
        listener = (files.tls_certificate.read_text(), files.tls_key.read_text())
        tls = {hs.tls_name: listener}
        if hs.served_host != hs.tls_name:
            tls[hs.served_host] = (
                files.public_tls_certificate.read_text(),
                files.public_tls_key.read_text(),
            )
    # The pods share one service account: that of this machine, or one made once.
    account = files.service_account
    if not account.exists():
        account = layout.kubernetes_service_account(name)
        read_or_create_private(
            account, service_account(hs, None, secrets.token_urlsafe(32)).encode()
        )
    replication_secret = redis_password = ""
    if hs.workers.count:
        replication_secret = files.replication_secret.read_text().strip()
        redis_password = _made_once(layout.kubernetes_redis_password(name))
    return HomeserverSecrets(
        signing_key=files.signing_key.read_text(),
        registration_shared_secret=files.registration_shared_secret.read_text(),
        macaroon_secret_key=files.macaroon_secret_key.read_text(),
        form_secret=files.form_secret.read_text(),
        postgres_password=postgres_password,
        tls=tls,
        listener=listener,
        service_account=account.read_text(),
        replication_secret=replication_secret,
        redis_password=redis_password,
    )


def cluster_inputs(deployment: Deployment, layout: DeploymentLayout) -> ClusterInputs:
    """Versions, and what the manifests need of the data folder (prepared: `layout`)."""
    homeservers = {
        name: homeserver_secrets(deployment, layout, name) for name in deployment.homeservers
    }
    store_password = _made_once(layout.kubernetes_postgres_password("services"))
    ca_files = [layout.ca_certificate.read_text()]
    ca_files += [path.read_text() for path in deployment.trusted_ca_files]
    return ClusterInputs(
        synapse_version=synapse_version(),
        homeport_version=__version__,
        homeservers=homeservers,
        ca_files=ca_files,
        files={path: path.read_text() for path in needed_files(deployment)},
        store_password=store_password,
    )


def needed_files(deployment: Deployment) -> list[Path]:
    """The files of this machine the manifests carry for Homeport's services and Synapse."""
    paths: list[Path] = []
    for role in roles(deployment):
        paths += role_files(deployment, role)
    layout = DeploymentLayout(deployment.data_dir)
    for name in deployment.homeservers:
        for capability in CAPABILITIES:
            paths += [f.path for f in capability.synapse_pod_files(deployment, name, layout)]
    return sorted(set(paths))


def service_account(hs: Homeserver, stored: str | None, password: str) -> str:
    """The credentials the pods share: those of one machine if any, else a new account's."""
    if stored:
        return stored
    user_id = f"@homeport:{hs.server_name}"
    return json.dumps({"user_id": user_id, "password": password})
