"""Synapse's worker settings, rendered from `workers:` and `redis:`. Pure.

The main process gets Redis, its HTTP replication listener, the instance
map, the stream writers and the sharded duties (federation sending,
pushers, the media repository); each worker gets a file of its own, read
by Synapse after the shared `homeserver.yaml` (`--config-path` twice), with
its name, its one listener and its log. Every worker is a
`synapse.app.generic_worker`: Synapse's documentation has retired the
specialised apps.

Loopback only: the replication listeners are plain HTTP on 127.0.0.1,
authenticated by a secret generated once; the workers that serve requests
listen with TLS, like the main process, behind the proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeport.capability import SynapsePieces
from homeport.config.deployment import Deployment
from homeport.config.workers import WorkerSpec
from homeport.homeserver.listeners import listener_resources
from homeport.layout import HomeserverLayout

LOOPBACK = "127.0.0.1"


Address = tuple[str, int]


def loopback_addresses(spec: WorkerSpec) -> Address:
    """On one machine every process listens on 127.0.0.1, on its own port."""
    return (LOOPBACK, spec.port)


def main_settings(
    deployment: Deployment,
    name: str,
    files: HomeserverLayout,
    main: Address | None = None,
    address: Callable[[WorkerSpec], Address] = loopback_addresses,
) -> dict[str, Any]:
    """What the main process's `homeserver.yaml` adds (and its workers share); {} without.

    `main` and `address` say where the main process and each replicating worker
    listen for HTTP replication: loopback by default, Services in a cluster.
    """
    hs = deployment.homeservers[name]
    workers = hs.workers
    if workers.count == 0:
        return {}
    assert deployment.redis is not None
    assert workers.port_base is not None
    specs = workers.specs()

    def named(kind: str) -> list[str]:
        return [spec.name for spec in specs if spec.kind == kind]

    def entry(where: Address) -> dict[str, Any]:
        return {"host": where[0], "port": where[1]}

    instance_map = {"main": entry(main or (LOOPBACK, workers.port_base))}
    instance_map.update({spec.name: entry(address(spec)) for spec in specs if spec.replication})
    settings: dict[str, Any] = {
        "redis": deployment.redis.synapse_settings(),
        "instance_map": instance_map,
        "worker_replication_secret_path": str(files.replication_secret),
        # Synapse's default, written out: the main process runs the background jobs
        # ("master" is Synapse's name for it here, "main" in the instance map).
        "run_background_tasks_on": "master",
    }
    if named("event_persister"):
        settings["stream_writers"] = {"events": named("event_persister")}
    if named("federation_sender"):
        settings["federation_sender_instances"] = named("federation_sender")
    if named("pusher"):
        settings["pusher_instances"] = named("pusher")
    if named("media"):
        settings["enable_media_repo"] = False
        settings["media_instance_running_background_jobs"] = named("media")[0]
    return settings


def replication_listener(port: int, bind: str = LOOPBACK) -> dict[str, Any]:
    return {
        "port": port,
        "bind_addresses": [bind],
        "type": "http",
        "tls": False,
        "resources": [{"names": ["replication"], "compress": False}],
    }


def worker_listener(
    deployment: Deployment,
    spec: WorkerSpec,
    pieces: SynapsePieces,
    port: int | None = None,
    bind: str = LOOPBACK,
    tls: bool = True,
) -> dict[str, Any]:
    """The one listener of a worker: what the proxy sends it, its replication, or health only.

    On one machine: the spec's port on loopback, TLS for what the proxy sends;
    a cluster passes its pod port, every address, and plain HTTP (TLS ends at
    the Ingress).
    """
    port = spec.port if port is None else port
    if spec.replication:
        return replication_listener(port, bind)
    if spec.serves_http:
        names = listener_resources(pieces) if spec.kind == "generic" else ["media"]
        return {
            "port": port,
            "bind_addresses": [bind],
            "type": "http",
            "tls": tls,
            "x_forwarded": deployment.proxy is not None,
            "resources": [{"names": names, "compress": False}],
        }
    # Federation senders and pushers take no requests: /health is all they serve.
    return {
        "port": port,
        "bind_addresses": [bind],
        "type": "http",
        "tls": False,
        "resources": [{"names": ["health"], "compress": False}],
    }


def worker_config(
    deployment: Deployment,
    spec: WorkerSpec,
    files: HomeserverLayout,
    pieces: SynapsePieces,
    listener: dict[str, Any] | None = None,
    log_config: str | None = None,
) -> dict[str, Any]:
    """The worker's own file, read after the shared `homeserver.yaml`.

    A cluster passes the pod's listener and the shared console log config.
    """
    config: dict[str, Any] = {
        "worker_app": "synapse.app.generic_worker",
        "worker_name": spec.name,
        "worker_listeners": [listener or worker_listener(deployment, spec, pieces)],
        "worker_log_config": log_config or str(files.worker_log_config_file(spec.name)),
    }
    if spec.kind == "media":
        # The shared file turns the repository off for every other process;
        # Synapse loads it only where a process's own file turns it back on.
        config["enable_media_repo"] = True
    return config
