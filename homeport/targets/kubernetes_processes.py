"""Homeport's processes in a homeserver's namespace, from what each capability declares
(`ClusterProcess`). Pure.

A process beside Synapse is a second container of Synapse's pod: Synapse reaches it on
the pod's loopback, as on one machine (the audit bot: its application-service client
trusts no private CA, and its tokens never cross the pod network), its state on
Synapse's volume. Any other is a Deployment of its own: one replica, `Recreate`, never
two at once (group sync).
"""

from __future__ import annotations

from typing import Any

from homeport.capability import ClusterProcess
from homeport.targets.cluster import CONFIG, DATA, Role
from homeport.targets.kubernetes_namespace import HomeserverNamespace
from homeport.targets.kubernetes_pods import HomeportPods, local_probe


def _process(role: Role) -> ClusterProcess:
    assert role.process is not None, f"{role.name} runs no process of its own"
    return role.process


def _container(ns: HomeserverNamespace, role: Role) -> dict[str, Any]:
    return process_container(ns.pods, role)


def process_container(pods: HomeportPods, role: Role) -> dict[str, Any]:
    """The container of a role's process, with its liveness probe and resources."""
    process = _process(role)
    command = [str(CONFIG) if arg == "{config}" else arg for arg in process.command]
    return pods.container(
        process.container,
        command,
        [role],
        {
            "livenessProbe": {**local_probe(process.health_port), "failureThreshold": 4},
            "resources": {
                "requests": {"cpu": process.cpu_request, "memory": process.memory_request},
                "limits": {"memory": process.memory_limit},
            },
        },
    )


def sidecar_containers(
    ns: HomeserverNamespace,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The processes beside Synapse: (init containers, containers)."""
    init: list[dict[str, Any]] = []
    containers = []
    for role in ns.beside_synapse:
        process = _process(role)
        container = _container(ns, role)
        mounts = []
        if process.state_dir is not None:
            state = {
                "name": "data",
                "mountPath": str(DATA / process.state_dir),
                "subPath": process.state_subpath or process.state_dir,
            }
            container["volumeMounts"] = [*container["volumeMounts"], state]
            mounts.append(state)
        # Its files (a crypto store) stay across restarts; Synapse's container runs as
        # 991, Homeport's as 10001: the volume's group lets both in.
        init += ns.pods.init_containers([role], mounts)
        containers.append(container)
    return init, containers


def process_deployments(ns: HomeserverNamespace) -> dict[str, dict[str, Any]]:
    """The Deployments of the processes with pods of their own, by file name."""
    return {
        f"{_process(role).container}.yaml": ns.pods.deployment_object(
            _process(role).container, ns.name, [_container(ns, role)], [role]
        )
        for role in ns.roles
        if role.process is not None and not role.process.beside_synapse
    }
