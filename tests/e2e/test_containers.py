"""Homeport's images, built from deploy/ as shipped, running the rendered Kubernetes pods.

`homeport render --target kubernetes` writes the manifests of two homeservers
(with audit bots, group sync over this test's slapd, the bundled PostgreSQL
databases) and Homeport's services; the images the manifests name are built
from deploy/homeport.Dockerfile and deploy/synapse.Dockerfile on stand-ins of
the upstream bases (tests/containers/images.py). Every pod then runs in podman
as its manifest defines it (tests/containers/cluster.py): each with an address
of its own, its Services' names in /etc/hosts, and Debian's nginx as the Ingress
controller on the pods' gateway. What a user of the cluster does is then done:
the homeservers federate through the Ingress over TLS checked against the CA in
their ConfigMap, the audit bot records a room, the website logs an
administrator in through its Ingress, group sync makes the directory's group a
space, and the conference service vouches for a user of either homeserver.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
import yaml

from homeport.conference import tokens
from homeport.synapse.admin_api import SynapseAdmin
from homeport.synapse.api import SynapseClient
from tests.admin.website import log_in
from tests.containers import ingress
from tests.containers.cluster import Cluster, PodFailed, wait_for
from tests.containers.images import Built, build_variant, ensure_images, missing_libraries
from tests.containers.kube import Manifests, container_name, service_ips
from tests.containers.podman import inspect_image, podman
from tests.harness import edit_yaml, homeport, init_deployment
from tests.ldap_server import GROUPS, PEOPLE, READER_DN, READER_PASSWORD, Slapd
from tests.nginx import main_config, running_nginx
from tests.targets.manifests import documents

pytestmark = pytest.mark.e2e

SUBNET = "10.250.7.0/24"  # scripts/test makes the Ingress hosts resolve to its gateway
GATEWAY = "10.250.7.1"
NETWORK = "homeport-test-pods"
HOSTS = {
    "internal": "internal.pods.test",
    "external": "external.pods.test",
    "admin": "admin.pods.test",
    "conference": "meet.pods.test",
}
CAROL_PASSWORD = "carol's directory password"
# The names of the secret files of Homeport's data folder: none is in an image.
SECRET_FILE_NAMES = [
    w
    for name in (
        "signing.key",
        "registration_shared_secret",
        "macaroon_secret_key",
        "form_secret",
        "as_token",
        "hs_token",
        "service_account.json",
        "ca.key",
        "server.key",
        "listener.key",
        "auth_token",
        "jitsi_app_secret",
        "postgres_password",
        "homeport.yaml",
    )
    for w in ("-o", "-name", name)
][1:]


def _cluster_config(ldap_port: int) -> Any:
    def edit(data: Any) -> None:
        for name in ("internal", "external"):
            data["homeservers"][name]["server_name"] = HOSTS[name]
        data["homeservers"]["internal"]["audit"]["auto_join"] = "local_rooms"
        data["admin"]["host"] = HOSTS["admin"]
        data["conference"]["host"] = HOSTS["conference"]
        data["proxy"] = {"admin_from": [SUBNET]}
        # The Ingress controller stands on the pods' gateway: a private address.
        data["kubernetes"] = {"ingress_address": GATEWAY}
        data["group_sync"] = {
            "homeserver": "internal",
            "port": data["admin"]["port"] + 100,
            "interval": "1h",
            "ldap": {
                "uri": f"ldap://{GATEWAY}:{ldap_port}",
                "bind_dn": READER_DN,
                "bind_password_file": "ldap.secret",
                "user_base": PEOPLE,
                "group_base": GROUPS,
            },
            "spaces": [{"name": "Staff", "alias": "staff", "ldap_cn": "staff"}],
        }

    return edit


@dataclass
class Pods:
    cluster: Cluster
    manifests: Manifests
    built: list[Built]
    ingress_log: Path
    folder: Path

    def synapse(self, name: str) -> str:
        return f"http://{self.cluster.address(f'homeport-{name}', 'synapse')}:8008"

    def secret(self, name: str, key: str) -> str:
        return self.manifests.secret(f"homeport-{name}", "synapse-secrets")[key].decode()

    def ca(self) -> Path:
        path = self.folder / "ca.crt"
        path.write_bytes(self.manifests.secret("homeport-services", "upstream-ca")["ca.crt"])
        return path


def _start_order(manifests: Manifests) -> list[list[tuple[str, str]]]:
    """The databases, then the Synapses, then what talks to Synapse, each group at once
    (kubelet would restart a pod that started too early; these tests start each once)."""

    def rank(workload: dict[str, Any]) -> int:
        image = workload["spec"]["template"]["spec"]["containers"][0]["image"]
        return 0 if image.startswith("postgres") else 1 if "synapse" in image else 2

    groups: list[list[tuple[str, str]]] = [[], [], []]
    for workload in manifests.workloads():
        meta = workload["metadata"]
        groups[rank(workload)].append((meta["namespace"], meta["name"]))
    return groups


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pods]:
    folder = tmp_path_factory.mktemp("containers")
    config = init_deployment(folder / "machine")
    (folder / "machine" / "ldap.secret").write_text(READER_PASSWORD + "\n")
    (folder / "machine" / "ldap.secret").chmod(0o600)
    slapd = Slapd(folder / "slapd", address=GATEWAY)
    edit_yaml(config, _cluster_config(slapd.port))
    out = folder / "manifests"
    homeport("render", "-c", str(config), "--target", "kubernetes", "--out", str(out))
    manifests = Manifests.of(d for _, d in documents(out))
    ours = [image for image in manifests.images() if not image.startswith("postgres")]
    built = ensure_images(ours)
    with ExitStack() as stack:
        cluster = stack.enter_context(Cluster(manifests, folder / "pods", NETWORK, SUBNET))
        cluster.extra_hosts = dict.fromkeys(HOSTS.values(), GATEWAY)
        databases, synapses, services = _start_order(manifests)
        # The network's bridge, and its gateway's address, exist once a pod runs.
        cluster.start_together(databases)
        stack.enter_context(slapd)
        carol = slapd.add_person("carol", "Carol Directory", password=CAROL_PASSWORD)
        slapd.add_group("staff", [carol])
        ips = service_ips(manifests, cluster.addresses)
        blocks, files = ingress.server_blocks(manifests, ips, GATEWAY, str(folder / "ingress"))
        include = ingress.write(folder / "ingress", blocks, files)
        nginx_config = main_config(folder / "ingress", include)
        stack.enter_context(running_nginx(nginx_config, GATEWAY, 443))
        cluster.start_together(synapses)
        cluster.start_together(services)
        yield Pods(cluster, manifests, built, folder / "ingress" / "access.log", folder)


async def _register(pods: Pods, name: str, localpart: str, admin: bool = False) -> tuple[str, str]:
    async with SynapseClient(pods.synapse(name), httpx.create_ssl_context()) as client:
        user = await SynapseAdmin(client).register(
            pods.secret(name, "registration_shared_secret"), localpart, f"{localpart}-pw", admin
        )
    return user.user_id, user.access_token


def _client(pods: Pods, name: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=pods.synapse(name), headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


async def _messages(http: httpx.AsyncClient, room: str) -> list[str]:
    answer = await http.get(f"/_matrix/client/v3/rooms/{quote(room)}/messages?dir=b&limit=50")
    answer.raise_for_status()
    return [
        e["content"].get("body", "")
        for e in answer.json()["chunk"]
        if e["type"] == "m.room.message"
    ]


async def _eventually(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


def test_every_container_runs_as_its_manifest_says(pods: Pods) -> None:
    for plan in pods.cluster.plans.values():
        for container in plan.containers:
            if container.init:
                continue
            name = container_name(plan.name, container.name)
            uid = pods.cluster.exec(plan.name, container.name, "id", "-u").strip()
            assert container.user is not None, f"{name}: its manifest names no user"
            assert uid == str(container.user), f"{name} runs as {uid}, not {container.user}"
            assert uid != "0", f"{name} runs as root"
            if "--read-only" in container.run:
                wrote = podman("exec", name, "touch", "/written", check=False)
                assert wrote.returncode != 0, f"{name} wrote to its read-only root"
                assert "Read-only file system" in wrote.stderr, (name, wrote.stderr)
            for probe in container.probes:
                assert pods.cluster.probe(plan.name, name, probe) is None, (name, probe)


def test_each_container_reads_every_file_mounted_for_it(pods: Pods) -> None:
    """A file of a Secret or ConfigMap its user cannot read is said by name."""
    unreadable = []
    for plan in pods.cluster.plans.values():
        volumes = {v.name: v for v in plan.volumes}
        for container in plan.containers:
            if container.init:
                continue
            modes = {}
            for mount in container.mounts:
                volume = volumes[mount.volume]
                for file in volume.files or ():  # Secrets and ConfigMaps
                    if mount.sub_path is None:
                        modes[f"{mount.destination}/{file.path}"] = (file.mode, volume.group)
                    elif file.path == mount.sub_path:
                        modes[mount.destination] = (file.mode, volume.group)
            name = container_name(plan.name, container.name)
            for path in pods.cluster.unreadable(plan.name, container.name, list(modes)):
                mode, group = modes[path]
                unreadable.append(f"{name}: {path} (mode {mode:o}, group {group})")
    assert not unreadable, "files a container's user cannot read:\n" + "\n".join(unreadable)


async def test_the_homeservers_federate_through_the_ingress_over_verified_tls(pods: Pods) -> None:
    _alice, alice_token = await _register(pods, "external", "alice")
    bob, bob_token = await _register(pods, "internal", "bob")
    async with (
        _client(pods, "external", alice_token) as a,
        _client(pods, "internal", bob_token) as b,
    ):
        created = await a.post(
            "/_matrix/client/v3/createRoom", json={"name": "Across", "invite": [bob]}
        )
        assert created.status_code == 200, created.text
        room = created.json()["room_id"]
        joined = await b.post(f"/_matrix/client/v3/join/{quote(room)}", json={})
        assert joined.status_code == 200, joined.text
        sent = await b.put(
            f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/t1",
            json={"msgtype": "m.text", "body": "from internal, in a container"},
        )
        assert sent.status_code == 200, sent.text

        async def arrived() -> bool:
            return "from internal, in a container" in await _messages(a, room)

        await _eventually(arrived, 60, "bob's message on external")
    config = yaml.safe_load(
        pods.manifests.config_map("homeport-internal", "synapse-config")["homeserver.yaml"]
    )
    assert config["federation_verify_certificates"] is True
    assert config["federation_custom_ca_list"] == ["/etc/homeport/ca/ca.crt"]
    seen = pods.ingress_log.read_text()
    # Each homeserver was reached on its public host, through the Ingress (the invite to
    # internal, the message from it).
    assert re.search(
        rf" {HOSTS['internal']} \"PUT /_matrix/federation/v\d/invite/\S+ \S+ 200 ", seen
    )
    assert re.search(rf" {HOSTS['external']} \"PUT /_matrix/federation/v1/send/\S+ \S+ 200 ", seen)


async def test_the_audit_bot_records_a_room_in_its_container(pods: Pods) -> None:
    _dave, token = await _register(pods, "internal", "dave")
    async with _client(pods, "internal", token) as d:
        created = await d.post("/_matrix/client/v3/createRoom", json={"name": "Recorded"})
        assert created.status_code == 200, pods.cluster.logs("homeport-internal-synapse", "synapse")
        room = created.json()["room_id"]
        bot = "@audit:internal.pods.test"

        async def bot_joined() -> bool:
            members = await d.get(f"/_matrix/client/v3/rooms/{quote(room)}/joined_members")
            return bot in members.json().get("joined", {})

        await _eventually(bot_joined, 60, "the audit bot in the room")
        sent = await d.put(
            f"/_matrix/client/v3/rooms/{quote(room)}/send/m.room.message/t1",
            json={"msgtype": "m.text", "body": "kept by the bot"},
        )
        assert sent.status_code == 200, sent.text

    def recorded() -> bool:
        out = pods.cluster.exec(
            "homeport-internal-synapse", "audit-bot",
            "python", "-m", "homeport", "audit", "export", "-c", "/config/homeport.yaml",
            "internal", "--room", room,
        )  # fmt: skip
        return any(
            json.loads(line).get("body") == "kept by the bot" for line in out.splitlines() if line
        )

    wait_for(recorded, 60, "the message in the audit bot's record")


async def test_the_admin_website_logs_an_administrator_in_through_its_ingress(pods: Pods) -> None:
    root, _ = await _register(pods, "internal", "root", admin=True)
    context = ssl.create_default_context(cafile=pods.ca())
    async with httpx.AsyncClient(
        base_url=f"https://{HOSTS['admin']}", verify=context, timeout=60
    ) as http:
        answer = await log_in(http, "internal", root, "root-pw")
        assert answer.status_code == 303, answer.text
        page = await http.get("/federation")
        assert page.status_code == 200, page.text
        assert HOSTS["external"] in page.text
    # Its pod's data folder: the seed's copies kept to their owner, and nothing the pod
    # made of its own (no CA key, no homeserver's key: those stay where `render` ran).
    data = pods.cluster.folder / "homeport-services-admin" / "homeport-data"
    key = data / "admin" / "tls" / "server.key"
    assert key.stat().st_mode & 0o077 == 0
    assert key.stat().st_uid == 10001
    assert not (data / "ca" / "ca.key").exists()
    assert not list(data.glob("homeservers/*/keys/signing.key"))


def test_group_sync_makes_the_directory_group_a_space_carol_logs_in_and_is_in_it(
    pods: Pods,
) -> None:
    login = httpx.post(
        f"{pods.synapse('internal')}/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "carol"},
            "password": CAROL_PASSWORD,
        },
        timeout=60,
    )
    assert login.status_code == 200, login.text  # python-ldap and libldap in Synapse's image
    base, auth = (
        pods.synapse("internal"),
        {"Authorization": f"Bearer {login.json()['access_token']}"},
    )
    alias = quote("#staff:internal.pods.test")

    def member_of_the_space() -> bool:
        found = httpx.get(f"{base}/_matrix/client/v3/directory/room/{alias}", headers=auth)
        if found.status_code != 200:
            return False
        rooms = httpx.get(f"{base}/_matrix/client/v3/sync?timeout=0", headers=auth, timeout=60)
        mine = rooms.json().get("rooms", {})
        space = found.json()["room_id"]
        return space in mine.get("join", {}) or space in mine.get("invite", {})

    wait_for(member_of_the_space, 120, "group sync's space #staff, with carol in it")


async def test_the_conference_service_vouches_for_a_user_of_either_homeserver(pods: Pods) -> None:
    context = ssl.create_default_context(cafile=pods.ca())
    files = pods.manifests.secret("homeport-services", "homeport-files")
    secret = files["data--conference--jitsi_app_secret"].strip()
    for name in ("external", "internal"):
        user, token = await _register(pods, name, f"caller-{name}")
        async with _client(pods, name, token) as c:
            room = (await c.post("/_matrix/client/v3/createRoom", json={})).json()["room_id"]
            openid = await c.post(
                f"/_matrix/client/v3/user/{quote(user)}/openid/request_token", json={}
            )
            assert openid.status_code == 200, openid.text
        async with httpx.AsyncClient(verify=context, timeout=60) as http:
            answer = await http.post(
                f"https://{HOSTS['conference']}/jitsi/token",
                json={
                    "token": openid.json()["access_token"],
                    "matrix_server_name": HOSTS[name],
                    "room_id": room,
                },
            )
        assert answer.status_code == 200, (name, answer.text)
        claims = jwt.decode(
            answer.json()["token"], secret, algorithms=["HS256"], audience="homeport"
        )
        assert claims["context"]["user"]["id"] == user
        assert claims["room"] == tokens.jitsi_room_name(room)


def _secret_values(manifests: Manifests) -> set[str]:
    """What the rendered Secrets keep: each one-line value (a key, token or password),
    the lines of each PEM file, and every password, token, secret or key of their YAML."""
    found: set[str] = set()

    def leaves(data: Any, key: str = "") -> None:
        if isinstance(data, dict):
            for k, v in data.items():
                leaves(v, str(k))
        elif isinstance(data, list):
            for v in data:
                leaves(v, key)
        elif isinstance(data, str) and re.search("password|token|secret|key", key):
            found.add(data)

    for document in manifests.of_kind("Secret"):
        meta = document["metadata"]
        for value in manifests.secret(meta["namespace"], meta["name"]).values():
            text = value.decode(errors="replace").strip()
            if "\n" not in text:
                found.add(text)
            elif "-----BEGIN" in text:  # a key's or certificate's lines
                found.update(line for line in text.splitlines() if "-----" not in line)
            else:
                leaves(yaml.safe_load(text))
    return {v for v in found if len(v) >= 16}


def test_the_images_run_as_non_root_and_hold_no_secret(pods: Pods) -> None:
    secrets = _secret_values(pods.manifests)
    assert len(secrets) > 10  # the keys, tokens and passwords of the deployment
    for built in pods.built:
        user = inspect_image(built.tag)["Config"].get("User", "")
        assert user.split(":")[0] not in ("", "0", "root"), f"{built.tag} runs as {user!r}"
        mounted = podman("image", "mount", built.tag).stdout.strip()
        try:
            patterns = pods.folder / "secret-values"
            patterns.write_text("\n".join(sorted(secrets)) + "\n")
            found = subprocess.run(
                ["grep", "-r", "-l", "-I", "-F", "-f", str(patterns), mounted],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert found.stdout == "", (
                f"{built.tag} holds a secret of the deployment: {found.stdout}"
            )
            named = subprocess.run(
                ["find", mounted, "-xdev", "(", *SECRET_FILE_NAMES, ")", "-print"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            # python-ldap ships its test suite's certificates and keys (public, in its source).
            held = [p for p in named.stdout.splitlines() if "/slapdtest/certs/" not in p]
            assert held == [], f"{built.tag} holds secret files: {held}"
        finally:
            podman("image", "unmount", built.tag, check=False)


def test_every_native_module_of_the_images_finds_its_system_libraries(pods: Pods) -> None:
    """A system library missing from an image (libldap, libpq...) is said with the module
    that needs it, before any pod would fail to import it."""
    for built in pods.built:
        missing = missing_libraries(built.tag)
        assert missing == [], f"{built.tag}: libraries missing:\n" + "\n".join(missing)
        imports = "import ldap, psycopg2, homeport." + (
            "synapse_module.module" if "synapse" in built.tag else "cli"
        )
        loaded = podman(
            "run", "--rm", "--entrypoint", "python", built.tag, "-c", imports, check=False
        )
        assert loaded.returncode == 0, f"{built.tag}: {imports} fails:\n{loaded.stderr}"


def _failure(pods: Pods, name: str, change: Any) -> str:
    """What starting the admin pod, changed by `change` and named `name`, fails with."""
    admin = copy.deepcopy(pods.manifests.find("Deployment", "homeport-services", "admin"))
    admin["metadata"]["name"] = name
    admin["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = name  # no Service
    change(admin["spec"]["template"]["spec"])
    pods.cluster.add(admin)
    with pytest.raises(PodFailed) as failed:
        pods.cluster.start("homeport-services", name, timeout=60)
    return str(failed.value)


def test_packaging_mistakes_are_said_by_name(pods: Pods) -> None:
    """What would break a pod in a cluster breaks here, and the failure says what."""
    homeport_image = next(b.tag for b in pods.built if "synapse" not in b.tag)
    # An image without a library python-ldap links.
    broken = "localhost/homeport-test-broken:no-libldap"
    build_variant(
        homeport_image,
        broken,
        "USER root\nRUN rm -f /usr/lib/x86_64-linux-gnu/libldap-2.5.so.0*\nUSER 10001:10001",
    )
    try:
        missing = missing_libraries(broken)
        assert any("/ldap/" in m or "_ldap" in m for m in missing), missing
        assert any("libldap-2.5.so.0 => not found" in m for m in missing), missing
    finally:
        podman("rmi", "--force", broken, check=False)

    # A Secret its container's user cannot read (no fsGroup: root's alone, mode 0400).
    def unreadable(spec: dict[str, Any]) -> None:
        spec["securityContext"].pop("fsGroup")
        for volume in spec["volumes"]:
            if volume["name"] == "homeport-config":
                volume["secret"]["defaultMode"] = 0o400

    said = _failure(pods, "admin-unreadable", unreadable)
    assert "init container store-migrate exited with" in said, said
    assert "/config/homeport.yaml" in said, said

    # A command the image does not have.
    def misnamed(spec: dict[str, Any]) -> None:
        spec["containers"][0]["command"][0] = "pyhton"

    said = _failure(pods, "admin-misnamed", misnamed)
    assert "container admin" in said, said
    assert "pyhton" in said, said
