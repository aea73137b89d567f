"""A homeserver's audit bot in the cluster: a second container of Synapse's pod. Pure.

Synapse delivers transactions to it on the pod's loopback, as on one machine
(its application-service client trusts no private CA, and the tokens never
cross the pod network); its device keys live on Synapse's volume.
"""

from __future__ import annotations

from typing import Any

from homeport.targets.cluster import CONFIG, DATA
from homeport.targets.kubernetes_namespace import HomeserverNamespace
from homeport.targets.kubernetes_pods import local_probe


def audit_containers(ns: HomeserverNamespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The audit bot beside Synapse: (init containers, containers)."""
    role = ns.audit
    if role is None or ns.hs.audit is None:
        return [], []
    state = {
        "name": "data",
        "mountPath": str(DATA / "audit" / ns.name),
        "subPath": "audit",
    }
    command = ["audit", "run", "-c", str(CONFIG), ns.name]
    bot = ns.pods.container(
        "audit-bot",
        command,
        [role],
        {
            "livenessProbe": {**local_probe(ns.hs.audit.port), "failureThreshold": 4},
            "resources": {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"memory": "512Mi"},
            },
        },
    )
    bot["volumeMounts"] = [*bot["volumeMounts"], state]
    init = ns.pods.init_containers([role], [state])
    # Files the bot may hold in its keys folder (crypto store) stay across restarts;
    # Synapse's container runs as 991, the bot's as 10001: the volume's group lets both in.
    return init, [bot]
