"""`workers:` rendered for Kubernetes: a StatefulSet per worker kind, Redis, the Ingress routing.

The manifests of a homeserver with every kind of worker pass
kubernetes-validate --strict; Synapse's own configuration parser accepts
the main process and each worker pod as the pods will read them (the
ConfigMap's and the Secret's files); the instance map names Services that
exist; the Ingresses, read the way ingress-nginx reads them (every path of a
host a case-insensitive regex once one Ingress asks for it, tried longest
first), send each endpoint the installed Synapse registers where Homeport's
routing table says, and never the admin API; NetworkPolicies keep
replication and Redis to the homeserver's own Synapse processes.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from synapse.config.homeserver import HomeServerConfig

from homeport.config.loader import load_deployment
from homeport.homeserver.routing import Target, route, routes
from homeport.layout import DeploymentLayout
from tests.harness import edit_yaml, homeport, init_deployment
from tests.homeserver.test_routing import registered_endpoints, sample
from tests.targets.manifests import documents as _documents
from tests.targets.manifests import validate_strictly

WORKERS = {
    "generic": 2,
    "media": 1,
    "federation_senders": 2,
    "pushers": 1,
    "event_persisters": 2,
    "port_base": 30900,
}
DATABASE = "postgresql://synapse:a-database-password@db.example.org:5432/synapse"


def _with_workers(redis_url: str | None) -> Any:
    def edit(data: Any) -> None:
        internal = data["homeservers"]["internal"]
        internal["server_name"] = "internal.example.org"
        internal["database"] = DATABASE
        internal["workers"] = dict(WORKERS)
        data["homeservers"]["external"]["server_name"] = "example.org"
        data["homeservers"]["external"]["public_host"] = "matrix.example.org"
        data["admin"]["host"] = "admin.example.org"
        data["conference"]["host"] = "meet.example.org"
        data["proxy"] = {"admin_from": ["10.8.0.0/16"]}
        data["redis"] = {"url": "redis://:one-machine-password@127.0.0.1:6379"}
        data["kubernetes"] = {"namespace_prefix": "hp-"}
        if redis_url is not None:
            data["kubernetes"]["redis_url"] = redis_url

    return edit


def _render(directory: Path, redis_url: str | None = None) -> tuple[Path, Path]:
    config = init_deployment(directory)
    edit_yaml(config, _with_workers(redis_url))
    out = directory / "manifests"
    homeport("render", "-c", str(config), "--target", "kubernetes", "--out", str(out))
    return config, out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _render(tmp_path_factory.mktemp("kubernetes-workers"))


def _internal(out: Path) -> list[dict[str, Any]]:
    return [d for p, d in _documents(out / "internal") if p.name != "kustomization.yaml"]


def _one(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_the_workers_manifests_pass_kubernetes_strict_validation(
    rendered: tuple[Path, Path],
) -> None:
    _, out = rendered
    result = validate_strictly(out)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = yaml.safe_load((out / "internal" / "kustomization.yaml").read_text())["resources"]
    for file in ("workers.yaml", "workers-ingress.yaml", "redis.yaml", "redis-secrets.yaml"):
        assert file in listed
    assert (out / "internal" / "redis-secrets.yaml").stat().st_mode & 0o077 == 0
    # external has no workers: nothing of theirs in its namespace.
    assert not (out / "external" / "workers.yaml").exists()


def test_each_worker_kind_is_a_stateful_set_whose_pods_carry_one_machine_s_names(
    rendered: tuple[Path, Path],
) -> None:
    config, out = rendered
    documents = _internal(out)
    specs = load_deployment(config)[0].homeservers["internal"].workers.specs()
    config_map = _one(documents, "ConfigMap", "synapse-config")["data"]
    pods: dict[str, str] = {}
    for kind in ("generic", "media", "federation-sender", "pusher", "event-persister"):
        workload = _one(documents, "StatefulSet", kind)
        spec = workload["spec"]
        assert spec["serviceName"] == kind
        assert _one(documents, "Service", kind)["spec"]["clusterIP"] == "None"
        start = spec["ordinals"]["start"]
        (container,) = spec["template"]["spec"]["containers"]
        assert container["command"][-1] == "/config/worker-$(POD_NAME).yaml"
        assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
            container["env"]
        )
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        for ordinal in range(start, start + spec["replicas"]):
            pods[f"{kind}-{ordinal}"] = kind
    # Every pod finds its file, and the file names it as one machine does.
    assert set(pods) == {spec.name for spec in specs}
    for pod in pods:
        own = yaml.safe_load(config_map[f"worker-{pod}.yaml"])
        assert own["worker_name"] == pod
    # Media workers share the media store, on a volume of their own.
    media = _one(documents, "StatefulSet", "media")["spec"]["template"]["spec"]
    assert {"name": "media", "persistentVolumeClaim": {"claimName": "media"}} in media["volumes"]
    claim = _one(documents, "PersistentVolumeClaim", "media")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]  # one media worker


def _mapped(text: str, root: Path) -> str:
    """A file of the pods with their absolute paths moved under `root`."""
    for prefix in ("/secrets/", "/config/", "/data/", "/etc/homeport/"):
        text = text.replace(f" {prefix}", f" {root}{prefix}")  # values and list items
    return text


def _parsed(*texts: str) -> HomeServerConfig:
    merged: dict[str, Any] = {}
    for text in texts:
        merged.update(copy.deepcopy(yaml.safe_load(text)))
    config = HomeServerConfig()
    config.parse_config_dict(merged, "", "")
    return config


def test_synapse_accepts_each_pod_s_configuration_as_the_pod_reads_it(
    rendered: tuple[Path, Path], tmp_path: Path
) -> None:
    """The ConfigMap's and Secret's files, written where the pods mount them (under a
    scratch folder), parsed by Synapse in the order of the pods' --config-path."""
    _, out = rendered
    documents = _internal(out)
    config_map = _one(documents, "ConfigMap", "synapse-config")["data"]
    secrets = _decoded(_one(documents, "Secret", "synapse-secrets"))
    ca = _one(documents, "ConfigMap", "federation-ca")["data"]
    for folder, files in (("secrets", secrets), ("config", config_map), ("etc/homeport/ca", ca)):
        (tmp_path / folder).mkdir(parents=True)
        for name, text in files.items():
            (tmp_path / folder / name).write_text(_mapped(text, tmp_path))
    shared = [
        _mapped(config_map["homeserver.yaml"], tmp_path),
        _mapped(secrets["database.yaml"], tmp_path),
        _mapped(secrets["redis.yaml"], tmp_path),
    ]
    main = _parsed(*shared)
    assert main.worker.instance_name == "master"
    assert main.worker.writers.events == ["event-persister-1", "event-persister-2"]
    assert main.worker.send_federation is False
    assert main.media.can_load_media_repo is False
    assert main.redis.redis_enabled is True
    assert main.redis.redis_host == "redis.hp-internal.svc.cluster.local"
    assert (
        main.redis.redis_password
        == (tmp_path / "secrets" / "redis.yaml").read_text().split("password: ")[1].strip()
    )
    duties: dict[str, list[str]] = {}
    for name in sorted(k for k in config_map if k.startswith("worker-")):
        worker = _parsed(*shared, _mapped(config_map[name], tmp_path))
        (listener,) = worker.worker.worker_listeners
        assert listener.bind_addresses == ["0.0.0.0"]  # noqa: S104 - the pod's
        assert listener.tls is False  # TLS ends at the Ingress
        if worker.worker.send_federation:
            duties.setdefault("federation", []).append(worker.worker.worker_name)
        if worker.media.can_load_media_repo:
            duties.setdefault("media", []).append(worker.worker.worker_name)
        if worker.worker.start_pushers:
            duties.setdefault("push", []).append(worker.worker.worker_name)
    assert duties == {
        "federation": ["federation-sender-1", "federation-sender-2"],
        "media": ["media-1"],
        "push": ["pusher-1"],
    }
    # Nothing of one machine's Redis (its URL held a password) reaches the ConfigMap.
    assert "one-machine-password" not in json.dumps(config_map)
    assert "127.0.0.1" not in config_map["homeserver.yaml"]


def test_the_instance_map_names_services_that_exist(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    documents = _internal(out)
    shared = yaml.safe_load(
        _one(documents, "ConfigMap", "synapse-config")["data"]["homeserver.yaml"]
    )
    instances = shared["instance_map"]
    assert set(instances) == {"main", "event-persister-1", "event-persister-2"}
    main = _one(documents, "Service", "synapse")
    assert instances["main"] == {"host": "synapse.hp-internal.svc.cluster.local", "port": 9093}
    assert {"name": "replication", "port": 9093, "targetPort": 9093} in main["spec"]["ports"]
    listeners = {listener["port"]: listener for listener in shared["listeners"]}
    assert listeners[9093]["resources"][0]["names"] == ["replication"]
    persisters = _one(documents, "StatefulSet", "event-persister")
    for name in ("event-persister-1", "event-persister-2"):
        host = instances[name]["host"]
        pod, service, namespace = host.split(".")[:3]
        assert (pod, service, namespace) == (name, "event-persister", "hp-internal")
        assert persisters["spec"]["serviceName"] == service
        assert instances[name]["port"] == 9093


def _endpoints(config: Path) -> list[tuple[str, str]]:
    """(method, sample path) of every endpoint the installed Synapse registers."""
    deployment = load_deployment(config)[0]
    # A homeserver without workers: the main process registers every endpoint.
    rendered = DeploymentLayout(deployment.data_dir).homeserver("external").config_file
    data = registered_endpoints(rendered)
    return sorted({(method, sample(pattern)) for key in data for method, pattern in data[key]})


def _ingress_nginx(ingresses: list[dict[str, Any]], host: str) -> list[tuple[str, str]]:
    """The locations ingress-nginx writes for `host`: (regex, Service), in the order it
    tries them (with use-regex on the host: every path a regex, longest first)."""
    assert any(
        i["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/use-regex") == "true"
        for i in ingresses
    )
    locations = [
        (path["path"], path["backend"]["service"]["name"])
        for ingress in ingresses
        for rule in ingress["spec"]["rules"]
        if rule["host"] == host
        for path in rule["http"]["paths"]
    ]
    assert len({p for p, _ in locations}) == len(locations)  # no path served twice
    return sorted(locations, key=lambda location: len(location[0]), reverse=True)


SERVICES: dict[str, Target] = {"synapse": "main", "generic": "generic", "media": "media"}


def test_the_ingress_routes_every_endpoint_as_the_table_says_and_never_the_admin_api(
    rendered: tuple[Path, Path],
) -> None:
    config, out = rendered
    ingresses = [d for d in _internal(out) if d["kind"] == "Ingress"]
    locations = _ingress_nginx(ingresses, "internal.example.org")
    # The routing table, without what an Ingress cannot tell apart (the method) or
    # must not serve (the admin API).
    table = [
        r
        for r in routes(generic=True, media=True)
        if not r.get_only and not r.pattern.startswith("^/_synapse/admin")
    ]
    public = ("/_matrix", "/_synapse/client", "/.well-known/matrix")
    reached: dict[str, int] = {}
    # Synapse's enumeration leaves the media repository's resource out: its paths, by hand.
    media = [
        ("POST", "/_matrix/media/v3/upload"),
        ("GET", "/_matrix/media/v3/download/x/y"),
        ("GET", "/_matrix/client/v1/media/thumbnail/x/y"),
        ("GET", "/_matrix/federation/v1/media/download/y"),
        ("GET", "/_synapse/admin/v1/media/x/y"),
    ]
    for method, path in _endpoints(config) + media:
        found = next(
            (service for regex, service in locations if re.match("^" + regex, path, re.I)),
            None,
        )
        expected = route(table, method, path) if path.startswith(public) else None
        assert (SERVICES[found] if found else None) == expected, (method, path, found)
        if found is not None:
            reached[found] = reached.get(found, 0) + 1
        if path.startswith("/_synapse/admin"):
            assert found is None, path  # never on the Internet
    assert reached["generic"] > 50
    assert reached["media"] >= 4
    assert reached["synapse"] > 50
    balancing = {
        i["metadata"]["name"]: i["metadata"]["annotations"].get(
            "nginx.ingress.kubernetes.io/upstream-hash-by"
        )
        for i in ingresses
    }
    assert balancing == {
        "synapse": None,
        "synapse-generic-client": "$http_authorization",  # a user's /sync on one worker
        "synapse-generic-federation": "$remote_addr",  # an origin's transactions on one
        "synapse-media": None,
    }


def test_replication_and_redis_take_only_the_homeserver_s_synapse_processes(
    rendered: tuple[Path, Path],
) -> None:
    _, out = rendered
    documents = _internal(out)
    processes = {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/component": "synapse",
                "app.kubernetes.io/instance": "internal",
            }
        }
    }
    policies = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "NetworkPolicy"}
    main_rules = {rule["ports"][0]["port"]: rule["from"] for rule in policies["synapse"]["ingress"]}
    assert main_rules[9093] == [processes]
    assert policies["event-persister"]["ingress"] == [
        {"from": [processes], "ports": [{"protocol": "TCP", "port": 9093}]}
    ]
    assert policies["redis"]["ingress"] == [
        {"from": [processes], "ports": [{"protocol": "TCP", "port": 6379}]}
    ]
    assert policies["federation-sender"]["ingress"] == []  # no connection at all
    assert policies["pusher"]["ingress"] == []
    # The generic and media workers take what the main process's plain listener takes.
    assert policies["generic"]["ingress"][0]["from"] == main_rules[8008]
    # Every Synapse process carries the label the rules select; Redis and the audit bot's
    # pod aside, nothing else does.
    labelled = {
        d["metadata"]["name"]
        for d in documents
        if d["kind"] == "StatefulSet"
        and d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
        == "synapse"
    }
    assert labelled == {
        "synapse",
        "generic",
        "media",
        "federation-sender",
        "pusher",
        "event-persister",
    }
    # The secrets are in Secrets only.
    secrets = _decoded(_one(documents, "Secret", "synapse-secrets"))
    redis_conf = _decoded(_one(documents, "Secret", "redis-config"))["redis.conf"]
    password = yaml.safe_load(secrets["redis.yaml"])["redis"]["password"]
    assert f"requirepass {password}\n" in redis_conf
    maps = json.dumps([d["data"] for d in documents if d["kind"] == "ConfigMap"])
    assert password not in maps
    assert secrets["replication_secret"] not in maps


def test_an_external_redis_replaces_the_bundled_one(tmp_path: Path) -> None:
    _, out = _render(tmp_path, redis_url="rediss://:pw@redis.example.org:6380/3")
    documents = _internal(out)
    assert not [d for d in documents if d["metadata"]["name"] == "redis"]
    secrets = _decoded(_one(documents, "Secret", "synapse-secrets"))
    assert yaml.safe_load(secrets["redis.yaml"])["redis"] == {
        "enabled": True,
        "host": "redis.example.org",
        "port": 6380,
        "dbid": 3,
        "password": "pw",
        "use_tls": True,
    }
