"""What the container tests make of a manifest (tests/containers/kube.py, ingress.py): pure."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.containers.ingress import server_blocks
from tests.containers.kube import File, Manifests, Mount, Unsupported, hosts, pod_plan, service_ips

NS = "homeport-internal"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _manifests(container: dict[str, Any], pod: dict[str, Any] | None = None) -> Manifests:
    labels = {"app.kubernetes.io/name": "synapse"}
    return Manifests.of(
        [
            {
                "kind": "StatefulSet",
                "metadata": {"name": "synapse", "namespace": NS},
                "spec": {
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "securityContext": {"fsGroup": 991},
                            "containers": [container],
                            "volumes": [
                                {
                                    "name": "secrets",
                                    "secret": {"secretName": "s", "defaultMode": 0o400},
                                },
                                {"name": "config", "configMap": {"name": "c"}},
                                {"name": "tmp", "emptyDir": {}},
                            ],
                            **(pod or {}),
                        },
                    },
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                },
            },
            {
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": NS},
                "data": {"key": _b64("k")},
            },
            {
                "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": NS},
                "data": {"a.yaml": "a: 1"},
            },
            {
                "kind": "Service",
                "metadata": {"name": "synapse", "namespace": NS},
                "spec": {"selector": labels, "ports": [{"port": 8008, "targetPort": 8008}]},
            },
            {"kind": "Kustomization", "resources": []},  # no metadata: not a cluster object
        ]
    )


CONTAINER = {
    "name": "synapse",
    "image": "homeport-synapse:1",
    "command": ["python", "-m", "synapse.app.homeserver"],
    "args": ["--config-path", "/config/a.yaml"],
    "env": [{"name": "A", "value": 1}],
    "ports": [{"name": "http", "containerPort": 8008}],
    "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
    "livenessProbe": {"exec": {"command": ["true"]}},
    "securityContext": {
        "runAsUser": 991,
        "runAsGroup": 991,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    },
    "volumeMounts": [
        {"name": "config", "mountPath": "/config", "readOnly": True},
        {"name": "secrets", "mountPath": "/secrets/key", "subPath": "key", "readOnly": True},
        {"name": "data", "mountPath": "/data/audit", "subPath": "audit"},
        {"name": "tmp", "mountPath": "/tmp"},
    ],
}


def test_a_container_runs_with_everything_its_manifest_says_and_nothing_else() -> None:
    manifests = _manifests(CONTAINER)
    plan = pod_plan(manifests, manifests.workloads()[0], "/pods/p")
    (container,) = plan.containers
    assert container.run == (
        f"--name={NS}-synapse_synapse",
        "--user=991:991",
        "--group-add=991",
        "--read-only",
        "--read-only-tmpfs=false",  # podman's own /tmp and /run would hide a mistake
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        "--env=A=1",
        "--mount=type=bind,source=/pods/p/config,destination=/config,ro=true",
        "--mount=type=bind,source=/pods/p/secrets/key,destination=/secrets/key,ro=true",
        "--mount=type=bind,source=/pods/p/data/audit,destination=/data/audit",
        "--mount=type=bind,source=/pods/p/tmp,destination=/tmp",
        '--entrypoint=["python", "-m", "synapse.app.homeserver"]',
        "homeport-synapse:1",
        "--config-path",
        "/config/a.yaml",
    )
    assert container.user == 991
    assert container.mounts[1] == Mount("secrets", "key", "/secrets/key", read_only=True)
    readiness, liveness = container.probes
    assert (readiness.kind, readiness.http, readiness.period) == (
        "readiness",
        ("http", 8008, "/health"),
        5,
    )
    assert (liveness.kind, liveness.command, liveness.failures) == ("liveness", ("true",), 3)
    assert plan.sub_folders == (("data", "audit"),)


def test_volumes_have_kubelets_owners_and_modes() -> None:
    manifests = _manifests(CONTAINER)
    volumes = {v.name: v for v in pod_plan(manifests, manifests.workloads()[0], "/p").volumes}
    # With an fsGroup, kubelet adds owner and group read to a read-only volume's files.
    assert volumes["secrets"].files == (File("key", b"k", 0o440),)
    assert volumes["config"].files == (File("a.yaml", b"a: 1", 0o644),)
    assert (volumes["tmp"].files, volumes["tmp"].folder_mode) == (None, 0o777)
    assert (volumes["data"].files, volumes["data"].folder_mode) == (None, 0o2775)
    assert {v.group for v in volumes.values()} == {991}


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"volumeMounts": [{"name": "nowhere", "mountPath": "/x"}]}, "volume nowhere"),
        ({"readinessProbe": {"httpGet": {"port": "https"}}}, "names no port of it: https"),
        ({"readinessProbe": {"tcpSocket": {"port": 8008}}}, "neither httpGet nor exec"),
    ],
)
def test_what_the_tests_cannot_reproduce_is_said(change: dict[str, Any], said: str) -> None:
    manifests = _manifests({**CONTAINER, **change})
    with pytest.raises(Unsupported, match=said):
        pod_plan(manifests, manifests.workloads()[0], "/p")


def test_each_pod_knows_the_services_by_their_cluster_names() -> None:
    manifests = _manifests(CONTAINER)
    ips = {f"{NS}-synapse": "10.250.7.10"}
    assert hosts(manifests, NS, ips, {"internal.pods.test": "10.250.7.1"}) == {
        f"synapse.{NS}.svc.cluster.local": "10.250.7.10",
        f"synapse.{NS}.svc": "10.250.7.10",
        f"synapse.{NS}": "10.250.7.10",
        "synapse": "10.250.7.10",
        "internal.pods.test": "10.250.7.1",
    }
    assert "synapse" not in hosts(manifests, "homeport-services", ips, {})  # another namespace
    assert service_ips(manifests, ips) == {f"{NS}/synapse": "10.250.7.10"}


def test_the_ingress_stand_in_follows_the_annotations_homeport_sets() -> None:
    manifests = Manifests.of(
        [
            {
                "kind": "Ingress",
                "metadata": {
                    "name": "admin",
                    "namespace": "svc",
                    "annotations": {
                        "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
                        "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
                        "nginx.ingress.kubernetes.io/proxy-ssl-secret": "svc/upstream-ca",
                        "nginx.ingress.kubernetes.io/proxy-ssl-name": "admin.example.org",
                        "nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8",
                    },
                },
                "spec": {
                    "tls": [{"hosts": ["admin.example.org"], "secretName": "admin-tls"}],
                    "rules": [
                        {
                            "host": "admin.example.org",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {"name": "admin", "port": {"number": 8450}}
                                        },
                                    }
                                ]
                            },
                        }
                    ],
                },
            },
            {
                "kind": "Secret",
                "metadata": {"name": "upstream-ca", "namespace": "svc"},
                "data": {"ca.crt": _b64("CA")},
            },
            {
                "kind": "Secret",
                "metadata": {"name": "admin-tls", "namespace": "svc"},
                "data": {"tls.crt": _b64("C"), "tls.key": _b64("K")},
            },
        ]
    )
    blocks, files = server_blocks(manifests, {"svc/admin": "10.250.7.20"}, "10.250.7.1", "/i")
    assert "listen 10.250.7.1:443 ssl;" in blocks
    assert "server_name admin.example.org;" in blocks
    assert "allow 10.0.0.0/8;" in blocks
    assert "deny all;" in blocks
    assert "proxy_pass https://10.250.7.20:8450;" in blocks
    assert "proxy_ssl_verify on;" in blocks
    assert "proxy_ssl_trusted_certificate /i/svc-admin-upstream-ca.crt;" in blocks
    assert "proxy_ssl_name admin.example.org;" in blocks
    assert {f.path: f.content for f in files} == {
        "/i/svc-admin-upstream-ca.crt": b"CA",
        "/i/svc-admin-tls.crt": b"C",
        "/i/svc-admin-tls.key": b"K",
    }
