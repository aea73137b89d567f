"""Group sync in the cluster: a Deployment in the namespace of the homeserver it serves. Pure.

One replica, `Recreate`: never two at once. Synapse gets the LDAP login
module and the bind password from its own Secret
(`homeport.targets.kubernetes_synapse_files`).
"""

from __future__ import annotations

from typing import Any

from homeport.targets.cluster import CONFIG
from homeport.targets.kubernetes_namespace import HomeserverNamespace
from homeport.targets.kubernetes_pods import local_probe


def group_sync(ns: HomeserverNamespace) -> dict[str, Any] | None:
    """Its Deployment, when group sync serves this homeserver."""
    sync = ns.deployment.group_sync
    role = ns.groupsync
    if role is None or sync is None:
        return None
    container = ns.pods.container(
        "group-sync",
        ["groupsync", "watch", "-c", str(CONFIG)],
        [role],
        {
            "livenessProbe": {**local_probe(sync.port), "failureThreshold": 4},
            "resources": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"memory": "1Gi"},
            },
        },
    )
    return ns.pods.deployment_object("group-sync", ns.name, [container], [role])
