"""Homeport's two images, built from deploy/*.Dockerfile exactly as shipped.

No image registry is reachable here, so the upstream bases the Dockerfiles name
(python:3.11-slim-bookworm, ghcr.io/element-hq/synapse) and the postgres image
the manifests name are made as stand-ins from Debian's own mirror: mmdebstrap
makes a minimal root file system, `podman import` turns it into an image, and a
Containerfile of tests/containers/standins/ finishes it the way upstream's image
is made. Each stand-in is tagged with the upstream name, so the Dockerfiles
build unmodified with `--pull=never`. A stand-in carries the hash of its recipe
as a label and is made again only when the recipe changes; Homeport's images
are built every run, from podman's layer cache when nothing they copy changed.

    python -m tests.containers.images    # build them all, with the time each took
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.containers.podman import image_label, inspect_image, podman

ROOT = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).parent / "standins"
EXTRA_CAS = Path("/usr/local/share/ca-certificates")  # the machine's own (an egress proxy's)
RECIPE_LABEL = "org.homeport.test.recipe"
LOCK = Path(tempfile.gettempdir()) / "homeport-container-images.lock"


@dataclass(frozen=True)
class Standin:
    """An upstream image made here: its name, the Debian suite under it, its recipe."""

    tag: str
    suite: str
    containerfile: str
    files: tuple[str, ...] = ()  # from tests/containers/standins, beside the Containerfile
    from_root: tuple[str, ...] = ()  # from the repository
    build_args: dict[str, str] = field(default_factory=dict)


def synapse_version() -> str:
    """The version deploy/synapse.Dockerfile builds on by default."""
    text = (ROOT / "deploy" / "synapse.Dockerfile").read_text()
    found = re.search(r"^ARG SYNAPSE_VERSION=(\S+)$", text, re.MULTILINE)
    if found is None:
        raise AssertionError("deploy/synapse.Dockerfile: no `ARG SYNAPSE_VERSION=<version>` line")
    return found.group(1)


def standins() -> list[Standin]:
    version = synapse_version()
    return [
        Standin(
            "docker.io/library/python:3.11-slim-bookworm",
            "bookworm",
            "python.Containerfile",
            files=("docker-clean",),
        ),
        Standin(
            f"ghcr.io/element-hq/synapse:v{version}",
            "trixie",
            "synapse.Containerfile",
            files=("docker-clean",),
            from_root=("constraints.txt",),
            build_args={"SYNAPSE_VERSION": version},
        ),
        Standin(
            "docker.io/library/postgres:16",
            "bookworm",
            "postgres.Containerfile",
            files=("postgres-entrypoint.sh", "docker-clean"),
        ),
    ]


def _rootfs_command(suite: str, tarball: Path) -> list[str]:
    return ["mmdebstrap", "--variant=minbase", "--include=ca-certificates", suite, str(tarball)]


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def _extra_cas() -> list[Path]:
    return sorted(EXTRA_CAS.glob("*.crt")) if EXTRA_CAS.is_dir() else []


def rootfs_recipe(suite: str) -> str:
    return _digest(" ".join(_rootfs_command(suite, Path("rootfs.tar"))).encode())


def standin_recipe(standin: Standin) -> str:
    parts = [
        rootfs_recipe(standin.suite).encode(),
        (STANDINS / standin.containerfile).read_bytes(),
        repr(sorted(standin.build_args.items())).encode(),
        *((STANDINS / name).read_bytes() for name in standin.files),
        *((ROOT / name).read_bytes() for name in standin.from_root),
        *(ca.read_bytes() for ca in _extra_cas()),
    ]
    return _digest(*parts)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_rootfs(suite: str) -> str:
    """A minimal Debian `suite` as a local image (made once per recipe)."""
    recipe = rootfs_recipe(suite)
    tag = f"localhost/homeport-test-rootfs:{suite}-{recipe}"
    if image_label(tag, RECIPE_LABEL) == recipe:
        return tag
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="homeport-rootfs-") as folder:
        tarball = Path(folder) / "rootfs.tar"
        made = subprocess.run(
            _rootfs_command(suite, tarball), capture_output=True, text=True, timeout=600
        )
        if made.returncode != 0:
            raise AssertionError(f"mmdebstrap {suite} failed:\n{made.stderr[-3000:]}")
        podman("import", "--change", f"LABEL {RECIPE_LABEL}={recipe}", str(tarball), tag)
    _say(f"made Debian {suite}'s root file system in {time.monotonic() - started:.0f} s")
    return tag


def ensure_standin(standin: Standin) -> float | None:
    """Make `standin` unless its recipe is made already; the seconds it took, or None."""
    recipe = standin_recipe(standin)
    if image_label(standin.tag, RECIPE_LABEL) == recipe:
        return None
    base = ensure_rootfs(standin.suite)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="homeport-standin-") as folder:
        context = Path(folder)
        shutil.copy(STANDINS / standin.containerfile, context / "Containerfile")
        for name in standin.files:
            shutil.copy(STANDINS / name, context / name)
        for name in standin.from_root:
            shutil.copy(ROOT / name, context / name)
        (context / "ca-certificates").mkdir()
        for ca in _extra_cas():
            shutil.copy(ca, context / "ca-certificates" / ca.name)
        args = [f"--build-arg=BASE={base}"]
        args += [f"--build-arg={k}={v}" for k, v in standin.build_args.items()]
        podman(
            "build", "--pull=never", *args, "--label", f"{RECIPE_LABEL}={recipe}",
            "-t", standin.tag, str(context), timeout=1200,
        )  # fmt: skip
    return time.monotonic() - started


@dataclass(frozen=True)
class Built:
    tag: str
    seconds: float
    size: int  # bytes, as podman reports it


DOCKERFILES = {
    "homeport": "deploy/homeport.Dockerfile",
    "homeport-synapse": "deploy/synapse.Dockerfile",
}


def dockerfile_for(tag: str) -> str:
    """The Dockerfile of deploy/ that builds an image the manifests name."""
    name = tag.split("/")[-1].split(":")[0]
    if name not in DOCKERFILES:
        raise AssertionError(f"the manifests name an image no Dockerfile of deploy/ builds: {tag}")
    return DOCKERFILES[name]


def build(tag: str) -> Built:
    """Build `tag` from its Dockerfile as shipped, on the stand-in bases only."""
    dockerfile = dockerfile_for(tag)
    started = time.monotonic()
    podman(
        "build", "--pull=never", "-f", dockerfile, "-t", tag, ".", timeout=1800, cwd=ROOT
    )  # fmt: skip
    seconds = time.monotonic() - started
    return Built(tag, seconds, int(inspect_image(tag)["Size"]))


@contextmanager
def _exclusive() -> Iterator[None]:
    """One builder at a time (test workers, a developer's build) on this machine."""
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_images(tags: list[str]) -> list[Built]:
    """The stand-ins (when their recipe changed) and then Homeport's images `tags`."""
    with _exclusive():
        for standin in standins():
            seconds = ensure_standin(standin)
            if seconds is not None:
                _say(f"made the stand-in {standin.tag} in {seconds:.0f} s")
        return [build(tag) for tag in tags]


# Every native module of the image's Python packages, with each library it links that
# the image lacks ("…/_ldap.cpython-311-x86_64-linux-gnu.so: libldap-2.5.so.0 => not found").
_LDD_EVERY_MODULE = (
    "find / -xdev -name '*.so*' -path '*-packages/*' -type f 2>/dev/null | while read -r so;"
    ' do ldd "$so" 2>/dev/null | grep \'not found\' | sed "s|^[[:space:]]*|$so: |"; done'
)


def missing_libraries(tag: str) -> list[str]:
    """The system libraries a native module of image `tag` needs and the image lacks."""
    done = podman("run", "--rm", "--entrypoint", "sh", tag, "-c", _LDD_EVERY_MODULE, timeout=300)
    return [line for line in done.stdout.splitlines() if line.strip()]


def build_variant(base: str, tag: str, steps: str) -> None:
    """An image made from `base` with Containerfile `steps` (a test's broken image)."""
    with tempfile.TemporaryDirectory(prefix="homeport-variant-") as folder:
        (Path(folder) / "Containerfile").write_text(f"FROM {base}\n{steps}\n")
        podman("build", "--pull=never", "-t", tag, folder, timeout=300)


def default_tags() -> list[str]:
    from homeport import __version__

    return [f"homeport:{__version__}", f"homeport-synapse:{synapse_version()}"]


def main() -> None:
    if shutil.which("podman") is None:
        raise SystemExit("podman is not installed (scripts/test installs it)")
    for built in ensure_images(default_tags()):
        print(f"{built.tag}: {built.size / 1e6:.0f} MB, built in {built.seconds:.0f} s")


if __name__ == "__main__":
    main()
