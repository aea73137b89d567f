"""`homeport render --target kubernetes`: manifests Kubernetes' own schemas accept.

The rendered files are checked with kubernetes-validate --strict (the
schemas of a current Kubernetes), then read back: every workload in its
homeserver's namespace, kustomize bases that list exactly their files,
nothing secret in a ConfigMap, and NetworkPolicies that follow the policy.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from homeport.config.loader import load_deployment, load_deployment_text
from homeport.layout import DeploymentLayout
from homeport.synapse.render import render_homeserver
from homeport.targets.kubernetes import HomeserverSecrets, render_kubernetes
from tests.harness import edit_yaml, homeport, init_deployment

VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


def _production(data: Any) -> None:
    data["homeservers"]["internal"]["server_name"] = "internal.example.org"
    data["homeservers"]["external"]["server_name"] = "example.org"
    data["homeservers"]["external"]["public_host"] = "matrix.example.org"
    data["admin"]["host"] = "admin.example.org"
    data["conference"]["host"] = "meet.example.org"
    data["proxy"] = {}  # the same file runs one machine behind nginx on 443
    data["kubernetes"] = {"namespace_prefix": "hp-"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("kubernetes")
    config = init_deployment(directory, relax=False)
    edit_yaml(config, _production)
    out = directory / "manifests"
    result = homeport("render", "-c", str(config), "--target", "kubernetes", "--out", str(out))
    assert "Not in the manifests yet: the admin website" in " ".join(result.stdout.split())
    return config, out


def _documents(out: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, document)
        for path in sorted(out.rglob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def test_every_manifest_passes_kubernetes_strict_validation(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    manifests = [p for p in sorted(out.rglob("*.yaml")) if p.name != "kustomization.yaml"]
    result = subprocess.run(
        [str(VALIDATE), "--strict", *map(str, manifests)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
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
    assert passed == len([d for p, d in _documents(out) if p.name != "kustomization.yaml"])


def test_each_homeserver_is_a_base_in_its_own_namespace(rendered: tuple[Path, Path]) -> None:
    _, out = rendered
    top = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert top["resources"] == ["internal/", "external/"]
    for name in ("internal", "external"):
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
    (container,) = pod["containers"]
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
    on_one_machine = render_homeserver(
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
    files = render_kubernetes(model, "1.163.2", dict.fromkeys(model.homeservers, SECRETS), ["ca"])
    found = {}
    for name in model.homeservers:
        policy = next(yaml.safe_load_all(files[f"{name}/network-policy.yaml"]))
        found[name] = {
            source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for source in policy["spec"]["ingress"][0]["from"]
        }
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
    files = render_kubernetes(model, "1.163.2", {"solo": SECRETS}, ["ca"])
    assert "solo/synapse-tls-secrets.yaml" not in files
    ingress = yaml.safe_load(files["solo/ingress.yaml"].split("\n", 1)[1])
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    config = yaml.safe_load(
        yaml.safe_load(files["solo/synapse-config.yaml"])["data"]["homeserver.yaml"]
    )
    assert "federation_custom_ca_list" not in config  # public certificates: the system's CAs
