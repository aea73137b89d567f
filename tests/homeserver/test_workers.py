"""`workers:` -> Synapse's worker settings, checked by Synapse's own configuration parser.

The rendered `homeserver.yaml` and each worker's file are read the way
Synapse reads them (`--config-path` twice: the worker's keys over the
shared ones) by `HomeServerConfig`, which refuses an inconsistent instance
map or stream writer; then the duties land where `workers:` says.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from synapse.config.homeserver import HomeServerConfig

from homeport.config.loader import load_deployment, load_deployment_text
from homeport.config.workers import Workers
from homeport.errors import ConfigError
from homeport.layout import DeploymentLayout
from tests.harness import homeport

WORKERS_YAML = """\
redis: {{url: "redis://127.0.0.1:6379/2"}}
proxy: {{address: 127.10.0.1, port: 8443}}
homeservers:
  internal:
    server_name: internal.example.org
    port: 8448
    database: postgresql://synapse@127.0.0.1:5432/synapse_internal
    workers:
      {{generic: 2, federation_senders: 2, media: 1, pushers: 1, event_persisters: {persisters},
       port_base: 9100}}
  external:
    server_name: external.example.org
    port: 8449
"""


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        (Workers(), []),
        (
            Workers(generic=2, federation_senders=1, port_base=9000),
            [
                ("generic-1", "generic", 9001),
                ("generic-2", "generic", 9002),
                ("federation-sender-1", "federation_sender", 9003),
            ],
        ),
        (
            Workers(media=1, pushers=1, event_persisters=2, port_base=7000),
            [
                ("media-1", "media", 7001),
                ("pusher-1", "pusher", 7002),
                ("event-persister-1", "event_persister", 7003),
                ("event-persister-2", "event_persister", 7004),
            ],
        ),
    ],
    ids=["none", "generic-and-senders", "media-pushers-persisters"],
)
def test_workers_are_named_and_given_ports_in_order(
    workers: Workers, expected: list[tuple[str, str, int]]
) -> None:
    assert [(s.name, s.kind, s.port) for s in workers.specs()] == expected


def _parsed(*documents: dict[str, Any]) -> HomeServerConfig:
    """As Synapse reads several --config-path files: later keys over earlier ones."""
    merged: dict[str, Any] = {}
    for document in documents:
        merged.update(copy.deepcopy(document))  # Synapse's parser edits what it reads
    config = HomeServerConfig()
    config.parse_config_dict(merged, "", "")
    return config


@pytest.fixture(scope="module", params=[0, 2], ids=["events-on-main", "two-persisters"])
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int]:
    directory = tmp_path_factory.mktemp("workers")
    config = directory / "homeport.yaml"
    config.write_text(WORKERS_YAML.format(persisters=request.param))
    homeport("render", "-c", str(config))  # keys, certificates, every file: as `up` makes them
    return config, request.param


def test_synapse_accepts_the_main_process_and_every_worker(rendered: tuple[Path, int]) -> None:
    config_path, persisters = rendered
    deployment = load_deployment(config_path)[0]
    files = DeploymentLayout(deployment.data_dir).homeserver("internal")
    shared = yaml.safe_load(files.config_file.read_text())
    assert shared["redis"] == {"enabled": True, "host": "127.0.0.1", "port": 6379, "dbid": 2}
    replication = shared["listeners"][-1]
    assert replication["port"] == 9100
    assert replication["bind_addresses"] == ["127.0.0.1"]
    assert replication["resources"][0]["names"] == ["replication"]
    assert files.replication_secret.stat().st_mode & 0o077 == 0

    main = _parsed(shared)
    assert main.worker.instance_name == "master"
    assert main.worker.send_federation is False  # the senders do
    assert main.worker.start_pushers is False
    assert main.media.can_load_media_repo is False
    assert main.worker.run_background_tasks is True
    writers = ["master"] if persisters == 0 else ["event-persister-1", "event-persister-2"]
    assert main.worker.writers.events == writers

    specs = deployment.homeservers["internal"].workers.specs()
    assert len(specs) == 6 + persisters
    duties: dict[str, list[str]] = {}
    for spec in specs:
        own = yaml.safe_load(files.worker_config_file(spec.name).read_text())
        worker = _parsed(shared, own)
        assert worker.worker.worker_name == spec.name
        assert worker.worker.run_background_tasks is False
        (listener,) = worker.worker.worker_listeners
        assert listener.port == spec.port
        if worker.worker.send_federation:
            duties.setdefault("federation", []).append(spec.name)
        if worker.worker.start_pushers:
            duties.setdefault("push", []).append(spec.name)
        if worker.media.can_load_media_repo:
            duties.setdefault("media", []).append(spec.name)
        log = yaml.safe_load(files.worker_log_config_file(spec.name).read_text())
        assert log["handlers"]["file"]["filename"] == str(files.worker_log_file(spec.name))
    assert duties == {
        "federation": ["federation-sender-1", "federation-sender-2"],
        "push": ["pusher-1"],
        "media": ["media-1"],
    }


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            ("database: postgresql://synapse@127.0.0.1:5432/synapse_internal", "database: sqlite"),
            "Synapse's workers share one PostgreSQL database",
        ),
        (('redis: {url: "redis://127.0.0.1:6379/2"}', ""), "replicate over Redis"),
        ((",\n       port_base: 9100", ""), "workers need ports of their own"),
        (("port_base: 9100", "port_base: 8448"), "port 8448 (the replication listener)"),
        (("proxy: {address: 127.10.0.1, port: 8443}", ""), "take their requests from the proxy"),
        (("port: 8449", "port: 8449\n    synapse: {instance_map: {}}"), "set `workers:`"),
        (('"redis://127.0.0.1:6379/2"', '"http://127.0.0.1:6379"'), "is not a Redis URL"),
    ],
    ids=["sqlite", "no-redis", "no-ports", "port-clash", "no-proxy", "passthrough", "bad-url"],
)
def test_workers_that_cannot_run_are_refused_with_the_reason(
    change: tuple[str, str], says: str
) -> None:
    text = WORKERS_YAML.format(persisters=0).replace(*change)
    with pytest.raises(ConfigError) as raised:
        load_deployment_text(text, Path("/srv/homeport/homeport.yaml"))
    rendered = " ".join(" ".join(p.render().split()) for p in raised.value.problems)
    assert says in rendered
