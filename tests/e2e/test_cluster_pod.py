"""The admin website's pod, as the Kubernetes manifests define it, run on this machine.

No cluster runs here; what a pod runs does. From the rendered manifests the
test takes the admin Deployment's Secrets and volumes exactly as kubelet
would project them, runs its init containers' commands (the seed copy, the
store migration) and then its container's command, with three local
stand-ins: the data folder's path, the store (a PostgreSQL database of this
machine instead of the bundled one) and Synapse's Service name (the
homeservers' listeners here). With only the files the manifests give it,
the website logs an administrator in and shows the Federation tab, through
the shared service account.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from homeport.trust import client_ssl_context
from tests.admin.website import log_in
from tests.harness import (
    HOMEPORT,
    RunningDeployment,
    edit_yaml,
    free_port_run,
    homeport,
    init_deployment,
)

pytestmark = pytest.mark.e2e


def _documents(folder: Path) -> list[dict[str, Any]]:
    return [
        d
        for path in sorted(folder.glob("*.yaml"))
        for d in yaml.safe_load_all(path.read_text())
        if d and "kind" in d
    ]


def _secret(documents: list[dict[str, Any]], name: str) -> dict[str, str]:
    found = next(d for d in documents if d["kind"] == "Secret" and d["metadata"]["name"] == name)
    return {k: base64.b64decode(v).decode() for k, v in found["data"].items()}


def _project(secret: dict[str, str], items: list[dict[str, str]], folder: Path) -> None:
    """What kubelet does for a Secret volume with `items`."""
    for item in items:
        target = folder / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(secret[item["key"]])


def _local(command: list[str], paths: dict[str, str]) -> list[str]:
    """A container's command with the pod's paths replaced by this machine's."""
    replaced = []
    for word in command:
        for pod_path, here in paths.items():
            word = word.replace(pod_path, here)
        replaced.append(word)
    if replaced[:3] == ["python", "-m", "homeport"]:
        return [*HOMEPORT, *replaced[3:]]
    return replaced


PROXY = "127.10.0.1"  # where scripts/test makes the .homeport.test names resolve


def _host_names(data: Any) -> None:
    """A host name for each thing the Ingress serves (the render refuses one served twice)."""
    for name, hs in data["homeservers"].items():
        hs["server_name"] = f"{name}.homeport.test:{hs['port']}"
        hs["address"] = PROXY
    data["admin"]["host"] = "admin.homeport.test"
    data["conference"]["host"] = "meet.homeport.test"


async def test_the_admin_pod_serves_with_only_what_the_manifests_give_it(
    tmp_path: Path, postgres_databases: Callable[[], str]
) -> None:
    config = init_deployment(tmp_path / "machine")
    edit_yaml(config, _host_names)
    running = RunningDeployment(config)
    website: subprocess.Popen[bytes] | None = None
    try:
        running.start()
        out = tmp_path / "manifests"
        homeport("render", "-c", str(config), "--target", "kubernetes", "--out", str(out))
        documents = _documents(out / "services")
        admin = next(
            d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "admin"
        )
        spec = admin["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        files = _secret(documents, "homeport-files")
        pod = tmp_path / "pod"
        paths = {
            "/config": str(pod / "config"),
            "/seed": str(pod / "seed"),
            "/data": str(pod / "data"),
            "/etc/homeport/files": str(pod / "files"),
        }
        (pod / "data").mkdir(parents=True)
        _project(files, volumes["seed"]["secret"]["items"], pod / "seed")
        if "named-files" in volumes:
            _project(files, volumes["named-files"]["secret"]["items"], pod / "files")

        # homeport.yaml as the pod loads it, with this machine's stand-ins.
        cluster = yaml.safe_load(_secret(documents, "homeport-config")["homeport.yaml"])
        cluster["data_dir"] = paths["/data"]
        cluster["store"] = {"database": postgres_databases()}
        for hs in cluster["homeservers"].values():
            assert hs["service_host"].startswith("synapse.homeport-")
            hs["service_host"] = PROXY  # each Synapse's listener on this machine
        port = free_port_run(1)
        cluster["admin"].update(address=PROXY, port=port)
        (pod / "config").mkdir()
        (pod / "config" / "homeport.yaml").write_text(yaml.safe_dump(cluster))

        seed, migrate = spec["initContainers"]
        subprocess.run(_local(seed["command"], paths), check=True, timeout=60)
        key = pod / "data" / "admin" / "tls" / "server.key"
        assert key.stat().st_mode & 0o077 == 0
        migrated = subprocess.run(
            _local(migrate["command"], paths), capture_output=True, text=True, timeout=120
        )
        assert migrated.returncode == 0, migrated.stderr
        (container,) = spec["containers"]
        assert "--prepared" in container["command"]
        env = {**os.environ, **{e["name"]: e["value"] for e in container["env"]}}
        log = (tmp_path / "website.log").open("wb")
        website = subprocess.Popen(
            _local(container["command"], paths), stdout=log, stderr=subprocess.STDOUT, env=env
        )
        context = client_ssl_context(running.deployment)
        base = f"https://admin.homeport.test:{port}"
        async with httpx.AsyncClient(base_url=base, verify=context, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                assert website.poll() is None, (tmp_path / "website.log").read_text()
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "website.log").read_text()
                time.sleep(0.5)
            admin_id, password = await running.new_user("external", admin=True)
            assert (await log_in(http, "external", admin_id, password)).status_code == 303
            page = await http.get("/federation")
            assert page.status_code == 200, page.text
            assert "Federation" in page.text
        # It made nothing of its own: no CA key, no key of a homeserver.
        assert not (pod / "data" / "ca" / "ca.key").exists()
        assert not list((pod / "data").glob("homeservers/*/keys/signing.key"))
    finally:
        if website is not None and website.poll() is None:
            website.kill()
        if running.process is not None:
            running.stop()
        running.kill_leftovers()
