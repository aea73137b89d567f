"""`homeport render --target kubernetes`: manifests Kubernetes' own schemas accept.

The rendered files are checked with kubernetes-validate --strict (the
schemas of a current Kubernetes), then read back: every workload in its
homeserver's namespace, kustomize bases that list exactly their files,
nothing secret in a ConfigMap, and NetworkPolicies that follow the policy.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from homeport.capabilities import homeserver_config
from homeport.cli import main
from homeport.config.deployment import Deployment
from homeport.config.loader import load_deployment, load_deployment_text
from homeport.layout import DeploymentLayout
from homeport.targets.kubernetes import ClusterInputs, HomeserverSecrets, render_kubernetes
from tests.harness import edit_yaml, homeport, init_deployment
from tests.targets.manifests import documents as _documents
from tests.targets.manifests import validate_strictly


def _production(data: Any) -> None:
    data["homeservers"]["internal"]["server_name"] = "internal.example.org"
    data["homeservers"]["external"]["server_name"] = "example.org"
    data["homeservers"]["external"]["public_host"] = "matrix.example.org"
    data["admin"]["host"] = "admin.example.org"
    data["conference"]["host"] = "meet.example.org"
    data["proxy"] = {"admin_from": ["10.8.0.0/16"]}  # one machine behind nginx on 443, too
    data["kubernetes"] = {"namespace_prefix": "hp-"}
    data["group_sync"] = {
        "homeserver": "internal",
        "port": data["admin"]["port"] + 100,
        "ldap": {
            "uri": "ldaps://ldap.example.org",
            "bind_dn": "cn=homeport,dc=example,dc=org",
            "bind_password_file": "ldap.secret",
            "user_base": "ou=people,dc=example,dc=org",
            "group_base": "ou=groups,dc=example,dc=org",
        },
        "spaces": [{"name": "Staff", "alias": "staff", "ldap_cn": "staff"}],
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("kubernetes")
    config = init_deployment(directory)
    (directory / "ldap.secret").write_text("the bind password of the directory\n")
    (directory / "ldap.secret").chmod(0o600)
    edit_yaml(config, _production)
    out = directory / "manifests"
    homeport("render", "-c", str(config), "--target", "kubernetes", "--out", str(out))
    return config, out


def test_every_manifest_passes_kubernetes_strict_validation(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    result = validate_strictly(out)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = {document["kind"] for _, document in _documents(out)}
    assert {
        "Namespace",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Secret",
        "Ingress",
        "NetworkPolicy",
    } <= kinds
    passed = result.stdout.count(" passed for resource ")
    # Kubernetes has no schema for the Prometheus Operator's kind: promtool checks its
    # rules instead (test_the_alerts_rules_come_as_a_prometheus_rule_apart).
    operator = [d for _, d in _documents(out) if d["kind"] == "PrometheusRule"]
    assert len(operator) == 1
    assert "Couldn't find schema for kind PrometheusRule" in result.stdout + result.stderr
    assert passed == len([d for p, d in _documents(out) if p.name != "kustomization.yaml"]) - len(
        operator
    )


def test_each_homeserver_is_a_base_in_its_own_namespace(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    top = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert top["resources"] == ["internal/", "external/", "services/"]
    for name in ("internal", "external", "services"):
        base = out / name
        kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
        assert kustomization["namespace"] == f"hp-{name}"
        listed = set(kustomization["resources"])
        assert listed == {p.name for p in base.glob("*.yaml")} - {"kustomization.yaml"}
        for path, document in _documents(base):
            if path.name == "kustomization.yaml":
                continue
            if document["kind"] == "Namespace":
                assert document["metadata"]["name"] == f"hp-{name}"
            else:
                assert document["metadata"]["namespace"] == f"hp-{name}", (path, document)


def test_nothing_secret_is_in_a_config_map(rendered: tuple[Path, Path]) -> None:
    config, out = rendered
    deployment = load_deployment(config)[0]
    layout = DeploymentLayout(deployment.data_dir)
    secrets: list[str] = []
    for name in deployment.homeservers:
        files = layout.homeserver(name)
        for path in (
            files.signing_key,
            files.registration_shared_secret,
            files.macaroon_secret_key,
            files.form_secret,
            files.tls_key,
            layout.kubernetes_postgres_password(name),
        ):
            text = path.read_text().strip()
            # The key itself: a PEM's first base64 line, else the last word.
            secrets.append(text.splitlines()[1] if text.startswith("-----") else text.split()[-1])
    maps = "".join(
        yaml.safe_dump(d["data"]) for _, d in _documents(out) if d["kind"] == "ConfigMap"
    )
    for secret in secrets:
        assert len(secret) >= 16
        assert secret not in maps
    # They are in the Secrets (base64), generated once: a second render keeps them.
    for path in out.rglob("*secrets*.yaml"):
        assert path.stat().st_mode & 0o077 == 0, path
    database = next(
        yaml.safe_load(base64.b64decode(d["data"]["database.yaml"]))
        for p, d in _documents(out / "internal")
        if d["kind"] == "Secret" and d["metadata"]["name"] == "synapse-secrets"
    )
    password = layout.kubernetes_postgres_password("internal").read_text().strip()
    assert database["database"]["args"]["password"] == password
    assert database["database"]["args"]["host"] == "postgres"


def test_synapse_runs_confined_with_the_rendering_of_one_machine(
    rendered: tuple[Path, Path],
) -> None:
    config, out = rendered
    deployment = load_deployment(config)[0]
    documents = _documents(out / "external")
    synapse = next(
        d for _, d in documents if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "synapse"
    )
    pod = synapse["spec"]["template"]["spec"]
    container, bot = pod["containers"]
    assert bot["name"] == "audit-bot"  # external's bot, beside its Synapse
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert synapse["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    config_map = next(
        d
        for _, d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "synapse-config"
    )
    in_cluster = yaml.safe_load(config_map["data"]["homeserver.yaml"])
    on_one_machine = homeserver_config(
        deployment, "external", DeploymentLayout(deployment.data_dir)
    )
    for key in (
        "server_name",
        "rc_message",
        "rc_login",
        "federation",
        "allow_public_rooms_over_federation",
        "room_list_publication_rules",
        "user_directory",
    ):
        assert in_cluster[key] == on_one_machine[key], key
    assert in_cluster["public_baseurl"] == "https://matrix.example.org/"
    assert in_cluster["listeners"][0]["tls"] is False
    assert in_cluster["listeners"][0]["x_forwarded"] is True
    # The TLS listener of Homeport's services, with the certificate of one machine.
    assert in_cluster["listeners"][1]["tls"] is True
    assert in_cluster["listeners"][1]["port"] == deployment.homeservers["external"].port
    ingress = next(d for _, d in documents if d["kind"] == "Ingress")
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts == {"matrix.example.org", "example.org"}
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {"/_matrix", "/_synapse/client", "/.well-known/matrix"}  # no admin API


SECRETS = HomeserverSecrets(
    signing_key="ed25519 a_key c2lnbmluZw",
    registration_shared_secret="r" * 32,
    macaroon_secret_key="m" * 32,
    form_secret="f" * 32,
    postgres_password="p" * 32,
    tls={},
)


def _inputs(model: Deployment) -> ClusterInputs:
    return ClusterInputs(
        synapse_version="1.163.2",
        homeport_version="0.1.0",
        homeservers=dict.fromkeys(model.homeservers, SECRETS),
        ca_files=["ca"],
        files={},
    )


def _sources(whitelist: str) -> dict[str, set[str]]:
    """Who may reach each homeserver's Synapse, by namespace, for a whitelist on internal."""
    model = load_deployment_text(
        "kubernetes: {cert_manager_issuer: letsencrypt}\n"
        "homeservers:\n"
        f"  internal: {{server_name: i.example.org, address: 10.0.0.1, port: 8448, "
        f"policy: {whitelist}}}\n"
        "  external: {server_name: e.example.org, address: 10.0.0.2, port: 8448}\n"
        "  partner: {server_name: p.example.org, address: 10.0.0.3, port: 8448}\n",
        Path("/srv/homeport/homeport.yaml"),
    )[0]
    files = render_kubernetes(model, _inputs(model))
    found = {}
    for name in model.homeservers:
        policy = next(yaml.safe_load_all(files[f"{name}/network-policy.yaml"]))
        found[name] = {
            source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for source in policy["spec"]["ingress"][0]["from"]
        }
        # Homeport's services reach the TLS listener, from here and their namespace only.
        private = policy["spec"]["ingress"][1]
        assert private["ports"] == [{"protocol": "TCP", "port": 8448}]
        assert private["from"] == [
            {"podSelector": {}},
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "homeport-services"}
                }
            },
        ]
    return found


@pytest.mark.parametrize(
    ("whitelist", "expected"),
    [
        (
            "{}",
            {
                "internal": {"ingress-nginx", "homeport-external", "homeport-partner"},
                "external": {"ingress-nginx", "homeport-internal", "homeport-partner"},
                "partner": {"ingress-nginx", "homeport-internal", "homeport-external"},
            },
        ),
        (
            "{federation_domain_whitelist: [internal, external]}",
            {
                "internal": {"ingress-nginx", "homeport-external"},
                "external": {"ingress-nginx", "homeport-internal", "homeport-partner"},
                "partner": {"ingress-nginx", "homeport-external"},
            },
        ),
    ],
    ids=["open", "internal-closed-to-partner"],
)
def test_network_policies_let_siblings_in_where_they_federate(
    whitelist: str, expected: dict[str, set[str]]
) -> None:
    assert _sources(whitelist) == expected


def test_with_cert_manager_no_certificate_leaves_this_machine() -> None:
    model = load_deployment_text(
        "kubernetes: {cert_manager_issuer: letsencrypt}\n"
        "homeservers:\n  solo: {server_name: s.example.org, port: 8448}\n",
        Path("/srv/homeport/homeport.yaml"),
    )[0]
    files = render_kubernetes(model, _inputs(model))
    assert "solo/synapse-tls-secrets.yaml" not in files
    ingress = yaml.safe_load(files["solo/ingress.yaml"].split("\n", 1)[1])
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    config = yaml.safe_load(
        yaml.safe_load(files["solo/synapse-config.yaml"])["data"]["homeserver.yaml"]
    )
    assert "federation_custom_ca_list" not in config  # public certificates: the system's CAs


@pytest.mark.parametrize(
    ("ingress_address", "allowed"),
    [
        (None, None),  # a public ingress controller: nothing to allow
        ("93.184.215.14", None),  # public: Synapse connects to it anyway
        ("10.20.0.5", ["10.20.0.5"]),  # an on-premises load balancer: exactly it
    ],
    ids=["left-out", "public", "private"],
)
def test_siblings_federate_through_an_ingress_on_a_private_address(
    ingress_address: str | None, allowed: list[str] | None
) -> None:
    address = f", ingress_address: {ingress_address}" if ingress_address else ""
    model = load_deployment_text(
        f"kubernetes: {{cert_manager_issuer: letsencrypt{address}}}\n"
        "homeservers:\n"
        "  internal: {server_name: i.example.org, address: 10.0.0.1, port: 8448}\n"
        "  external: {server_name: e.example.org, address: 10.0.0.2, port: 8448}\n",
        Path("/srv/homeport/homeport.yaml"),
    )[0]
    files = render_kubernetes(model, _inputs(model))
    for name in model.homeservers:
        config_map = yaml.safe_load(files[f"{name}/synapse-config.yaml"])
        config = yaml.safe_load(config_map["data"]["homeserver.yaml"])
        # One machine's sibling addresses (10.0.0.x here) are never the cluster's.
        assert config.get("ip_range_whitelist") == allowed


def _decoded(document: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in document.get("data", {}).items()}


def _named(out: Path, kind: str, name: str, namespace: str) -> dict[str, Any]:
    return next(
        d
        for _, d in _documents(out)
        if d["kind"] == kind
        and d["metadata"]["name"] == name
        and d["metadata"].get("namespace") == namespace
    )


def _pods(out: Path) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, pod spec) of every workload."""
    return [
        (d["metadata"]["namespace"], d["spec"]["template"]["spec"])
        for _, d in _documents(out)
        if d["kind"] in ("Deployment", "StatefulSet")
    ]


def test_homeport_s_services_run_where_their_work_is(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    workloads = {
        (d["metadata"]["namespace"], d["kind"], d["metadata"]["name"]): d
        for _, d in _documents(out)
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    assert set(workloads) == {
        ("hp-internal", "StatefulSet", "synapse"),
        ("hp-internal", "StatefulSet", "postgres"),
        ("hp-internal", "Deployment", "group-sync"),
        ("hp-external", "StatefulSet", "synapse"),
        ("hp-external", "StatefulSet", "postgres"),
        ("hp-services", "Deployment", "admin"),
        ("hp-services", "Deployment", "conference"),
        ("hp-services", "Deployment", "alerts"),  # checks every homeserver, so beside none
        ("hp-services", "StatefulSet", "postgres"),  # Homeport's store (sqlite in the file)
    }
    alerts = workloads[("hp-services", "Deployment", "alerts")]["spec"]["template"]["spec"]
    (checker,) = alerts["containers"]
    watch = ["alerts", "watch", "-c", "/config/homeport.yaml", "--prepared"]
    assert checker["command"][3:] == watch
    for name in ("internal", "external"):
        pod = workloads[(f"hp-{name}", "StatefulSet", "synapse")]["spec"]["template"]["spec"]
        bot = next(c for c in pod["containers"] if c["name"] == "audit-bot")
        assert bot["command"][3:] == ["audit", "run", "-c", "/config/homeport.yaml", name]
        assert bot["securityContext"]["readOnlyRootFilesystem"] is True
        # Its device keys stay on Synapse's volume across restarts.
        assert {"name": "data", "mountPath": f"/data/audit/{name}", "subPath": "audit"} in bot[
            "volumeMounts"
        ]
    for namespace, pod in _pods(out):
        declared = {v["name"] for v in pod.get("volumes", [])}
        claimed = set()
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounted <= declared | {"data", "pgdata"}, (namespace, container["name"])
            claimed |= mounted
        assert declared <= claimed, (namespace, declared - claimed)


def test_each_pod_gets_only_the_files_its_work_needs(rendered: tuple[Path, Path]) -> None:
    config, out = rendered
    deployment = load_deployment(config)[0]
    layout = DeploymentLayout(deployment.data_dir)
    ca_key = layout.ca_key.read_text().splitlines()[1]
    signing = {
        n: layout.homeserver(n).signing_key.read_text().split()[-1]
        for n in ("internal", "external")
    }
    secrets = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): _decoded(d)
        for _, d in _documents(out)
        if d["kind"] == "Secret"
    }
    everything = "".join(v for data in secrets.values() for v in data.values())
    assert ca_key not in everything  # the CA's key never leaves this machine
    for (namespace, name), data in secrets.items():
        for hs, key in signing.items():
            if key in "".join(data.values()):
                assert (namespace, name) == (f"hp-{hs}", "synapse-secrets")
    services = secrets[("hp-services", "homeport-files")]
    assert "data--admin--tls--server.key" in services
    assert "data--homeservers--internal--keys--service_account.json" in services
    assert not [k for k in services if "audit" in k or "ldap" in k]
    internal = secrets[("hp-internal", "homeport-files")]
    assert "data--audit--internal--keys--as_token" in internal
    assert "etc--homeport--files--ldap-bind-password" in internal
    assert not [k for k in internal if "admin" in k or "external" in k or "conference" in k]
    # Synapse reads group sync's bind password for LDAP logins where its config says.
    synapse = secrets[("hp-internal", "synapse-secrets")]
    assert synapse["ldap-bind-password"] == "the bind password of the directory\n"
    # Only there: external's Synapse has no directory login, so not the directory's
    # password either (it once went to every homeserver's Synapse).
    directory_password = "the bind password of the directory"
    for (namespace, name), data in secrets.items():
        if directory_password in "".join(data.values()):
            assert namespace == "hp-internal", (namespace, name)
    # Each volume's items name keys its Secret has.
    for namespace, pod in _pods(out):
        for volume in pod.get("volumes", []):
            source = volume.get("secret")
            if source is not None and "items" in source:
                keys = secrets[(namespace, source["secretName"])]
                assert {i["key"] for i in source["items"]} <= set(keys), volume["name"]


def test_the_pods_load_the_homeport_yaml_rendered_for_the_cluster(
    rendered: tuple[Path, Path],
) -> None:
    config, out = rendered
    original = load_deployment(config)[0]
    for namespace in ("hp-services", "hp-internal", "hp-external"):
        text = _decoded(_named(out, "Secret", "homeport-config", namespace))["homeport.yaml"]
        cluster = load_deployment_text(text, Path("/config/homeport.yaml"))[0]
        assert cluster.data_dir == Path("/data")
        for name, hs in cluster.homeservers.items():
            assert hs.service_host == f"synapse.hp-{name}.svc.cluster.local"
            assert hs.server_name == original.homeservers[name].server_name
            assert hs.policy == original.homeservers[name].policy
        assert cluster.store.database.startswith("postgresql://homeport:")
        assert "@postgres.hp-services.svc.cluster.local:5432/homeport" in cluster.store.database
        assert cluster.group_sync is not None
        assert cluster.group_sync.ldap.bind_password_file == Path(
            "/etc/homeport/files/ldap-bind-password"
        )
        assert cluster.proxy is not None
        assert cluster.proxy.forwarded_from == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        assert cluster.admin is not None
        assert cluster.admin.address == "0.0.0.0"  # noqa: S104


def test_every_container_runs_a_command_homeport_has(rendered: tuple[Path, Path]) -> None:
    """Each Homeport command line parses, options and arguments, as the CLI would."""
    _, out = rendered
    checked = 0
    for _, pod in _pods(out):
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            command = container.get("command", [])
            if command[:3] != ["python", "-m", "homeport"]:
                continue
            words = command[3:]
            group: click.Command = main
            while isinstance(group, click.Group):
                found = group.get_command(click.Context(group), words[0])
                assert found is not None, words
                group, words = found, words[1:]
            group.make_context("homeport", list(words))  # raises on anything unknown
            checked += 1
    assert checked >= 10


def test_the_website_is_reached_only_from_admin_from(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    admin = _named(out, "Ingress", "admin", "hp-services")
    annotations = admin["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/whitelist-source-range"] == "10.8.0.0/16"
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert annotations["nginx.ingress.kubernetes.io/proxy-ssl-verify"] == "on"
    assert annotations["nginx.ingress.kubernetes.io/proxy-ssl-name"] == "admin.example.org"
    assert _decoded(_named(out, "Secret", "upstream-ca", "hp-services"))["ca.crt"].startswith(
        "-----BEGIN CERTIFICATE-----"
    )
    conference = _named(out, "Ingress", "conference", "hp-services")
    assert (
        "nginx.ingress.kubernetes.io/whitelist-source-range"
        not in conference["metadata"]["annotations"]
    )
    metrics = _named(out, "Ingress", "conference-metrics", "hp-services")
    assert metrics["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/metrics"
    assert (
        metrics["metadata"]["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"]
        == "10.8.0.0/16"
    )
    policies = {
        d["metadata"]["name"]: d
        for _, d in _documents(out / "services")
        if d["kind"] == "NetworkPolicy"
    }
    assert policies["admin"]["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    store = policies["postgres"]["spec"]["ingress"][0]["from"][0]
    assert store["namespaceSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "homeport"}


def test_a_host_the_ingress_would_serve_twice_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    config = init_deployment(tmp_path)  # the starter: every host is localhost
    out = tmp_path / "manifests"
    result = homeport(
        "render", "-c", str(config), "--target", "kubernetes", "--out", str(out), check=False
    )
    assert result.returncode == 2
    assert "the cluster's Ingress serves localhost for homeserver 'internal' already" in " ".join(
        result.stderr.split()
    )
    assert "admin.host" in result.stderr
    assert not out.exists()


def test_the_alerts_rules_come_as_a_prometheus_rule_apart(
    rendered: tuple[Path, Path], tmp_path: Path
) -> None:
    """The same rules as `--target prometheus`, in `monitoring/`: applied where the
    Prometheus Operator's kind exists, never by the top kustomization."""
    config, out = rendered
    rule = yaml.safe_load((out / "monitoring" / "prometheus-rule.yaml").read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["namespace"] == "hp-services"
    rules = tmp_path / "rules"
    homeport("render", "-c", str(config), "--target", "prometheus", "--out", str(rules))
    assert rule["spec"] == yaml.safe_load((rules / "homeport-rules.yml").read_text())
    top = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert "monitoring/" not in top["resources"]
    (tmp_path / "operator-rules.yml").write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run(
        ["promtool", "check", "rules", "operator-rules.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
