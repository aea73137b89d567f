"""What kubelet would do with Homeport's rendered pods, as podman commands: pure.

`pod_plan` reads a Deployment's or StatefulSet's pod template and the
manifests' Secrets and ConfigMaps and says which files each volume holds (with
kubelet's owners and modes: a Secret's `defaultMode`, the pod's `fsGroup`), and
the `podman run` arguments of each init container and container: the image,
command and arguments, user, groups, read-only root file system, dropped
capabilities, environment (Secret references resolved) and mounts (subPath
included) at the manifest's paths. Nothing of a container is written here: it
all comes from the manifests, so a container that differs from its manifest
cannot pass. The cluster's DNS is one /etc/hosts per pod (`hosts`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

Document = dict[str, Any]

DEFAULT_FILE_MODE = 0o644  # Kubernetes' defaultMode for Secret and ConfigMap volumes
EMPTY_DIR_MODE = 0o777  # kubelet makes emptyDir volumes world-writable


class Unsupported(AssertionError):
    """A manifest asks for something these tests do not reproduce (said, never skipped)."""


@dataclass(frozen=True)
class Manifests:
    documents: tuple[Document, ...]

    @classmethod
    def of(cls, documents: Iterable[Document]) -> Manifests:
        return cls(tuple(d for d in documents if d and "kind" in d and "metadata" in d))

    def find(self, kind: str, namespace: str, name: str) -> Document:
        for d in self.documents:
            meta = d["metadata"]
            if d["kind"] == kind and meta.get("namespace") == namespace and meta["name"] == name:
                return d
        raise Unsupported(f"the manifests have no {kind} {namespace}/{name}")

    def of_kind(self, *kinds: str) -> list[Document]:
        return [d for d in self.documents if d["kind"] in kinds]

    def secret(self, namespace: str, name: str) -> dict[str, bytes]:
        found = self.find("Secret", namespace, name)
        data = {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (found.get("stringData") or {}).items()})
        return data

    def config_map(self, namespace: str, name: str) -> dict[str, bytes]:
        found = self.find("ConfigMap", namespace, name)
        return {k: v.encode() for k, v in (found.get("data") or {}).items()}

    def workloads(self) -> list[Document]:
        return self.of_kind("Deployment", "StatefulSet")

    def images(self) -> list[str]:
        """Every image a pod of the manifests runs, each once, in their order."""
        seen: dict[str, None] = {}
        for workload in self.workloads():
            spec = workload["spec"]["template"]["spec"]
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                seen[container["image"]] = None
        return list(seen)


def pod_name(workload: Document) -> str:
    """The pod's name as podman knows it: namespace and workload."""
    return f"{workload['metadata']['namespace']}-{workload['metadata']['name']}"


def container_name(pod: str, container: str) -> str:
    """A container's name as podman knows it (unique across pods, as podman needs)."""
    return f"{pod}_{container}"


@dataclass(frozen=True)
class File:
    path: str  # inside the volume
    content: bytes
    mode: int


@dataclass(frozen=True)
class Volume:
    """A volume as kubelet makes it: files (Secret, ConfigMap) or an empty folder."""

    name: str
    files: tuple[File, ...] | None  # None: a folder (emptyDir, a claim)
    folder_mode: int
    group: int | None  # the pod's fsGroup, which owns what kubelet makes


@dataclass(frozen=True)
class Probe:
    kind: str  # startup, readiness, liveness
    http: tuple[str, int, str] | None  # scheme, port, path
    command: tuple[str, ...] | None
    period: float
    failures: int


@dataclass(frozen=True)
class Mount:
    volume: str
    sub_path: str | None
    destination: str
    read_only: bool


@dataclass(frozen=True)
class Container:
    name: str
    init: bool
    run: tuple[str, ...]  # `podman run` arguments after the pod's, ending with the image's
    probes: tuple[Probe, ...]
    user: int | None
    mounts: tuple[Mount, ...]


@dataclass(frozen=True)
class PodPlan:
    name: str
    volumes: tuple[Volume, ...]
    containers: tuple[Container, ...]
    # (volume, subPath) of a folder volume that a mount names: kubelet makes the
    # folder when it is missing, with the volume's owner and mode.
    sub_folders: tuple[tuple[str, str], ...] = ()


def _volume(manifests: Manifests, namespace: str, spec: Document, group: int | None) -> Volume:
    name = spec["name"]
    if "secret" in spec or "configMap" in spec:
        source = spec.get("secret") or spec["configMap"]
        data = (
            manifests.secret(namespace, source["secretName"])
            if "secret" in spec
            else manifests.config_map(namespace, source["name"])
        )
        mode = source.get("defaultMode", DEFAULT_FILE_MODE)
        items = source.get("items") or [{"key": k, "path": k} for k in sorted(data)]
        files = []
        for item in items:
            if item["key"] not in data:
                raise Unsupported(f"volume {name}: key {item['key']} is not in its source")
            files.append(File(item["path"], data[item["key"]], item.get("mode", mode)))
        # With an fsGroup, kubelet gives that group the files and adds read for owner
        # and group (pkg/volume/volume_linux.go: mode | 0440 on a read-only volume).
        extra = 0o440 if group is not None else 0
        files = [File(f.path, f.content, f.mode | extra) for f in files]
        return Volume(name, tuple(files), 0o755, group)
    if "emptyDir" in spec:
        return Volume(name, None, EMPTY_DIR_MODE, group)
    raise Unsupported(f"volume {name}: only Secret, ConfigMap and emptyDir volumes are reproduced")


def _claim(name: str, group: int | None) -> Volume:
    """A StatefulSet's claim: an empty folder its fsGroup may write (setgid, as kubelet sets)."""
    return Volume(name, None, 0o2775 if group is not None else 0o755, group)


def _ports(container: Document) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}


def _probe(kind: str, spec: Document, container: Document) -> Probe:
    period = float(spec.get("periodSeconds", 10))
    failures = int(spec.get("failureThreshold", 3))
    if "httpGet" in spec:
        get = spec["httpGet"]
        port = get["port"]
        if isinstance(port, str):
            if port not in _ports(container):
                raise Unsupported(f"{container['name']}: {kind} probe names no port of it: {port}")
            port = _ports(container)[port]
        scheme = get.get("scheme", "HTTP").lower()
        return Probe(kind, (scheme, int(port), get.get("path", "/")), None, period, failures)
    if "exec" in spec:
        return Probe(kind, None, tuple(spec["exec"]["command"]), period, failures)
    raise Unsupported(f"{container['name']}: a {kind} probe neither httpGet nor exec")


def _env(manifests: Manifests, namespace: str, container: Document) -> list[str]:
    out = []
    for entry in container.get("env", []):
        if "value" in entry:
            value = str(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            value = manifests.secret(namespace, ref["name"])[ref["key"]].decode()
        out.append(f"--env={entry['name']}={value}")
    return out


def _mount(mount: Document, volumes: Mapping[str, str]) -> Mount:
    if mount["name"] not in volumes:
        raise Unsupported(f"a mount of volume {mount['name']}, which the pod does not define")
    return Mount(
        mount["name"], mount.get("subPath"), mount["mountPath"], bool(mount.get("readOnly"))
    )


def _bind(mount: Mount, volumes: Mapping[str, str], root: str) -> str:
    """A `--mount` of the volume's host folder (or a file or folder of it, for subPath)."""
    source = PurePosixPath(root) / volumes[mount.volume]
    if mount.sub_path is not None:
        source = source / mount.sub_path
    spec = f"type=bind,source={source},destination={mount.destination}"
    return spec + (",ro=true" if mount.read_only else "")


def _container(
    manifests: Manifests,
    namespace: str,
    pod: str,
    container: Document,
    pod_security: Document,
    volumes: Mapping[str, str],
    root: str,
    init: bool,
) -> Container:
    security = container.get("securityContext", {})
    args: list[str] = [f"--name={container_name(pod, container['name'])}"]
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    group = security.get("runAsGroup", pod_security.get("runAsGroup"))
    if user is not None:
        args.append(f"--user={user}" + (f":{group}" if group is not None else ""))
    if "fsGroup" in pod_security:
        args.append(f"--group-add={pod_security['fsGroup']}")
    if security.get("readOnlyRootFilesystem"):
        # Only what the manifest mounts is writable: podman's own /tmp and /run tmpfs are off.
        args += ["--read-only", "--read-only-tmpfs=false"]
    drop = security.get("capabilities", {}).get("drop", [])
    if "ALL" in drop:
        args.append("--cap-drop=all")
    if security.get("allowPrivilegeEscalation") is False:
        args.append("--security-opt=no-new-privileges")
    args += _env(manifests, namespace, container)
    mounts = tuple(_mount(m, volumes) for m in container.get("volumeMounts", []))
    args += [f"--mount={_bind(m, volumes, root)}" for m in mounts]
    command = container.get("command")
    if command:
        # Kubernetes: `command` replaces the image's ENTRYPOINT and drops its CMD.
        args.append(f"--entrypoint={json.dumps([str(word) for word in command])}")
    args.append(container["image"])
    args += [str(a) for a in container.get("args", [])]
    probes = tuple(
        _probe(kind, container[f"{kind}Probe"], container)
        for kind in ("startup", "readiness", "liveness")
        if f"{kind}Probe" in container
    )
    runs_as = int(user) if user is not None else None
    return Container(container["name"], init, tuple(args), probes, runs_as, mounts)


def pod_plan(manifests: Manifests, workload: Document, root: str) -> PodPlan:
    """The pod of `workload`, its volumes under host folder `root` (one folder each)."""
    namespace = workload["metadata"]["namespace"]
    spec = workload["spec"]["template"]["spec"]
    pod_security = spec.get("securityContext", {})
    group = pod_security.get("fsGroup")
    volumes = [_volume(manifests, namespace, v, group) for v in spec.get("volumes", [])]
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        volumes.append(_claim(claim["metadata"]["name"], group))
    folders = {v.name: v.name for v in volumes}
    pod = pod_name(workload)
    containers = [
        _container(manifests, namespace, pod, c, pod_security, folders, root, init=True)
        for c in spec.get("initContainers", [])
    ] + [
        _container(manifests, namespace, pod, c, pod_security, folders, root, init=False)
        for c in spec["containers"]
    ]
    folder_volumes = {v.name for v in volumes if v.files is None}
    sub_folders = {
        (m["name"], m["subPath"])
        for c in [*spec.get("initContainers", []), *spec["containers"]]
        for m in c.get("volumeMounts", [])
        if "subPath" in m and m["name"] in folder_volumes
    }
    return PodPlan(pod, tuple(volumes), tuple(containers), tuple(sorted(sub_folders)))


def _selects(service: Document, workload: Document) -> bool:
    selector = service["spec"].get("selector") or {}
    labels = workload["spec"]["template"]["metadata"].get("labels", {})
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def service_addresses(manifests: Manifests, pod_ips: Mapping[str, str]) -> dict[str, str]:
    """Every Service's DNS names (`svc.ns.svc.cluster.local`, `svc.ns.svc`, `svc.ns`)
    to the address of the pod it selects: each pod has an address of its own, so a
    Service's port must be its target port."""
    names: dict[str, str] = {}
    for service in manifests.of_kind("Service"):
        meta = service["metadata"]
        for port in service["spec"].get("ports", []):
            if port.get("targetPort", port["port"]) != port["port"]:
                raise Unsupported(f"Service {meta['name']}: a port other than its target's")
        chosen = [w for w in manifests.workloads() if _selects(service, w)]
        if len(chosen) != 1:
            raise Unsupported(
                f"Service {meta['namespace']}/{meta['name']} selects {len(chosen)} pods"
            )
        ip = pod_ips[pod_name(chosen[0])]
        base = f"{meta['name']}.{meta['namespace']}"
        for name in (f"{base}.svc.cluster.local", f"{base}.svc", base):
            names[name] = ip
    return names


def service_ips(manifests: Manifests, pod_ips: Mapping[str, str]) -> dict[str, str]:
    """ "namespace/service" to the address of the pod behind it."""
    return {
        "/".join(reversed(name.split("."))): ip
        for name, ip in service_addresses(manifests, pod_ips).items()
        if name.count(".") == 1
    }


def hosts(
    manifests: Manifests, namespace: str, pod_ips: Mapping[str, str], extra: Mapping[str, str]
) -> dict[str, str]:
    """A pod's /etc/hosts: the Services' names, the short ones of its own namespace, `extra`."""
    names = service_addresses(manifests, pod_ips)
    for name, ip in list(names.items()):
        service, ns = name.split(".")[:2]
        if ns == namespace and name.count(".") == 1:
            names[service] = ip
    return {**names, **extra}
