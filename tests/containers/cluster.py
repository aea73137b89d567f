"""The rendered pods run in podman, one network namespace each, as kubelet would run them.

No Kubernetes API server can run here; its node agent's part can. `Cluster`
takes the manifests `homeport render --target kubernetes` wrote, gives each pod
an address of its own on a podman network and an /etc/hosts with every
Service's DNS names, makes its volumes as kubelet would (tests/containers/kube.py
says which files, owners and modes), runs its init containers to completion,
then its containers, and waits on their own probes. A container that exits or
a probe that fails raises with the pod, the container and its last output.
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.containers.kube import (
    Container,
    Manifests,
    PodPlan,
    Probe,
    Volume,
    container_name,
    hosts,
    pod_name,
    pod_plan,
)
from tests.containers.podman import PodmanError, podman

LOG_TAIL = 3000


class PodFailed(AssertionError):
    """A pod that did not come up as its manifest says, with why."""


def _tail(container: str) -> str:
    done = podman("logs", container, check=False)
    return (done.stdout + done.stderr)[-LOG_TAIL:]


class Cluster:
    """The pods of `manifests` on podman network `network` (made here, removed by `close`)."""

    def __init__(self, manifests: Manifests, folder: Path, network: str, subnet: str) -> None:
        self.manifests = manifests
        self.folder = folder
        self.network = network
        self.subnet = ipaddress.ip_network(subnet)
        self.addresses: dict[str, str] = {}
        self.plans: dict[str, PodPlan] = {}
        self.extra_hosts: dict[str, str] = {}
        for workload in manifests.workloads():
            self._assign(workload)

    def _assign(self, workload: dict[str, Any]) -> None:
        """The pod's address: the next free one past the first ten (the gateway's and
        podman's own)."""
        taken = set(self.addresses.values())
        free = next(str(ip) for ip in list(self.subnet.hosts())[9:] if str(ip) not in taken)
        self.addresses[pod_name(workload)] = free

    def add(self, workload: dict[str, Any]) -> None:
        """One more Deployment or StatefulSet (a test's own), with an address of its own."""
        self.manifests = Manifests((*self.manifests.documents, workload))
        self._assign(workload)

    def __enter__(self) -> Cluster:
        self.close()  # what a run killed before its end left
        podman("network", "create", "--subnet", str(self.subnet), self.network)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Every pod at once (podman stops them in parallel), then the network."""
        podman("pod", "rm", "--force", "--time", "5", *self.addresses, check=False, timeout=120)
        podman("network", "rm", "--force", self.network, check=False, timeout=60)

    def start_together(self, pods: list[tuple[str, str]], timeout: float = 240) -> None:
        """Pods that do not need each other, started at once (as a cluster would)."""
        with ThreadPoolExecutor(max_workers=len(pods)) as pool:
            for started in [pool.submit(self.start, ns, name, timeout) for ns, name in pods]:
                started.result()

    def address(self, namespace: str, name: str) -> str:
        return self.addresses[f"{namespace}-{name}"]

    def _workload(self, namespace: str, name: str) -> dict[str, object]:
        for kind in ("Deployment", "StatefulSet"):
            try:
                return self.manifests.find(kind, namespace, name)
            except AssertionError:
                continue
        raise AssertionError(f"the manifests have no workload {namespace}/{name}")

    def _make_volume(self, root: Path, volume: Volume) -> None:
        folder = root / volume.name
        folder.mkdir(parents=True, exist_ok=True)
        group = volume.group if volume.group is not None else -1
        for file in volume.files or ():
            target = folder / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.content)
            os.chown(target, 0, group)
            target.chmod(file.mode)
            for parent in target.relative_to(folder).parents:
                os.chown(folder / parent, 0, group)
                (folder / parent).chmod(0o755 if volume.group is None else 0o2755)
        os.chown(folder, 0, group)
        folder.chmod(volume.folder_mode)

    def start(self, namespace: str, name: str, timeout: float = 240) -> PodPlan:
        """Run one pod: its volumes, init containers, containers; wait on its probes."""
        workload = self._workload(namespace, name)
        pod = pod_name(workload)
        root = self.folder / pod
        plan = pod_plan(self.manifests, workload, str(root))
        self.plans[pod] = plan
        for volume in plan.volumes:
            self._make_volume(root, volume)
        for volume_name, sub in plan.sub_folders:
            volume_root = root / volume_name
            made = volume_root / sub
            if not made.exists():
                made.mkdir(parents=True)
                owner = volume_root.stat()
                os.chown(made, owner.st_uid, owner.st_gid)
                made.chmod(owner.st_mode & 0o7777)
        known = hosts(self.manifests, namespace, self.addresses, self.extra_hosts)
        podman(
            "pod", "create", f"--name={pod}", f"--network={self.network}",
            f"--ip={self.addresses[pod]}", f"--hostname={name}",
            *(f"--add-host={host}:{ip}" for host, ip in sorted(known.items())),
        )  # fmt: skip
        for container in plan.containers:
            if container.init:
                done = podman("run", f"--pod={pod}", *container.run, check=False, timeout=300)
                if done.returncode != 0:
                    raise PodFailed(
                        f"pod {pod}: init container {container.name} exited with "
                        f"{done.returncode}:\n{(done.stdout + done.stderr)[-LOG_TAIL:]}"
                    )
            else:
                try:
                    podman("run", "--detach", f"--pod={pod}", *container.run)
                except PodmanError as error:
                    raise PodFailed(f"pod {pod}: container {container.name}: {error}") from None
        deadline = time.monotonic() + timeout
        for container in plan.containers:
            if not container.init:
                self._wait_probes(pod, container, deadline)
        return plan

    def _running(self, pod: str, container: str) -> None:
        state = json.loads(podman("inspect", container).stdout)[0]["State"]
        if not state.get("Running"):
            raise PodFailed(
                f"pod {pod}: container {container} exited with {state.get('ExitCode')}:\n"
                + _tail(container)
            )

    def _wait_probes(self, pod: str, container: Container, deadline: float) -> None:
        name = container_name(pod, container.name)
        for probe in container.probes:
            while True:
                self._running(pod, name)
                problem = self.probe(pod, name, probe)
                if problem is None:
                    break
                if time.monotonic() > deadline:
                    raise PodFailed(
                        f"pod {pod}: container {container.name}'s {probe.kind} probe fails: "
                        f"{problem}\n{_tail(name)}"
                    )
                time.sleep(min(probe.period, 1.0))
        self._running(pod, name)

    def probe(self, pod: str, container: str, probe: Probe) -> str | None:
        """None when `probe` passes; else what it saw (kubelet's checks: an HTTP status
        of 200-399, or a command that exits 0)."""
        if probe.http is not None:
            scheme, port, path = probe.http
            url = f"{scheme}://{self.addresses[pod]}:{port}{path}"
            # kubelet does not verify the certificate of an HTTPS probe.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            try:
                status = httpx.get(url, verify=context, timeout=5).status_code
            except httpx.HTTPError as error:
                return f"GET {url}: {error!r}"
            return None if 200 <= status < 400 else f"GET {url}: {status}"
        assert probe.command is not None
        done = podman("exec", container, *probe.command, check=False, timeout=30)
        if done.returncode == 0:
            return None
        return f"{' '.join(probe.command)} exited with {done.returncode}: {done.stderr[-500:]}"

    def unreadable(self, pod: str, container: str, paths: list[str]) -> list[str]:
        """Those of `paths` the container's user cannot read (one `exec` for them all)."""
        if not paths:
            return []
        script = 'for p; do [ -r "$p" ] || echo "$p"; done'
        out = self.exec(pod, container, "sh", "-c", script, "sh", *paths)
        return out.splitlines()

    def exec(self, pod: str, container: str, *command: str, timeout: float = 120) -> str:
        """A command in a running container of `pod` ("namespace-workload"), as `kubectl
        exec` runs it (as the container's user)."""
        name = container_name(pod, container)
        done = podman("exec", name, *command, check=False, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} in {name} exited with {done.returncode}:\n"
                f"{done.stdout[-1500:]}{done.stderr[-1500:]}"
            )
        return done.stdout

    def logs(self, pod: str, container: str) -> str:
        return _tail(container_name(pod, container))


def wait_for(check: object, timeout: float, what: str, interval: float = 0.5) -> None:
    """Poll `check` (a callable returning a truthy value) until it holds."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
