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

from typing import Any

import homeport.synapse.render as render
from homeport.config.deployment import Deployment
from homeport.config.workers import WorkerSpec
from homeport.layout import HomeserverLayout

LOOPBACK = "127.0.0.1"


def main_settings(deployment: Deployment, name: str, files: HomeserverLayout) -> dict[str, Any]:
    """What the main process's `homeserver.yaml` adds (and its workers share); {} without."""
    hs = deployment.homeservers[name]
    workers = hs.workers
    if workers.count == 0:
        return {}
    assert deployment.redis is not None
    assert workers.port_base is not None
    specs = workers.specs()

    def named(kind: str) -> list[str]:
        return [spec.name for spec in specs if spec.kind == kind]

    instance_map: dict[str, Any] = {"main": {"host": LOOPBACK, "port": workers.port_base}}
    instance_map.update(
        {spec.name: {"host": LOOPBACK, "port": spec.port} for spec in specs if spec.replication}
    )
    settings: dict[str, Any] = {
        "redis": deployment.redis.synapse_settings(),
        "instance_map": instance_map,
        "worker_replication_secret_path": str(files.replication_secret),
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


def replication_listener(port: int) -> dict[str, Any]:
    return {
        "port": port,
        "bind_addresses": [LOOPBACK],
        "type": "http",
        "tls": False,
        "resources": [{"names": ["replication"], "compress": False}],
    }


def worker_listener(deployment: Deployment, spec: WorkerSpec) -> dict[str, Any]:
    """The one listener of a worker: what the proxy sends it, its replication, or health only."""
    if spec.replication:
        return replication_listener(spec.port)
    if spec.serves_http:
        names = render.listener_resources(deployment) if spec.kind == "generic" else ["media"]
        return {
            "port": spec.port,
            "bind_addresses": [LOOPBACK],
            "type": "http",
            "tls": True,
            "x_forwarded": deployment.proxy is not None,
            "resources": [{"names": names, "compress": False}],
        }
    # Federation senders and pushers take no requests: /health is all they serve.
    return {
        "port": spec.port,
        "bind_addresses": [LOOPBACK],
        "type": "http",
        "tls": False,
        "resources": [{"names": ["health"], "compress": False}],
    }


def worker_config(
    deployment: Deployment, spec: WorkerSpec, files: HomeserverLayout
) -> dict[str, Any]:
    """The worker's own file, read after the shared `homeserver.yaml`."""
    config: dict[str, Any] = {
        "worker_app": "synapse.app.generic_worker",
        "worker_name": spec.name,
        "worker_listeners": [worker_listener(deployment, spec)],
        "worker_log_config": str(files.worker_log_config_file(spec.name)),
    }
    if spec.kind == "media":
        # The shared file turns the repository off for every other process;
        # Synapse loads it only where a process's own file turns it back on.
        config["enable_media_repo"] = True
    return config


def worker_log_config(files: HomeserverLayout, spec: WorkerSpec) -> dict[str, Any]:
    """The main process's logging, into the worker's own file."""
    config = render.render_log_config(files)
    config["handlers"]["file"]["filename"] = str(files.worker_log_file(spec.name))
    return config
