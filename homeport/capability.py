"""What a capability contributes to a deployment, declared in one place.

A capability (the audit bot, group sync, the conference service, the admin
website, Synapse's workers, the proxy) is one package with a `capability.py`
that defines a subclass of `Capability` and one line in
`homeport.capabilities.CAPABILITIES`. The assembly (`up`'s services and
preparation, `status`, what each homeserver runs with, the commands, each
homeserver's `homeserver.yaml`) iterates over the registered capabilities and
never names one. Every hook contributes nothing by default, so a capability
overrides only what it has.

Hooks that run in `up` (services, materialize) may import their package's heavy
modules inside the method: `homeport status` and the command line load the
registry, not every capability's server code.
"""

from __future__ import annotations

import importlib
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeport.config.deployment import Deployment
from homeport.config.lines import KeyPath
from homeport.layout import DeploymentLayout

if TYPE_CHECKING:  # types only: the registry loads in every command, the services in `up`
    from homeport.pki import CertificateAuthority
    from homeport.supervision.host import ServiceHost
    from homeport.supervision.host_process import HostedMain
    from homeport.supervision.service import Service


@dataclass(frozen=True)
class ServiceContext:
    """What a capability's services may need besides the model."""

    config_path: Path
    layout: DeploymentLayout
    ssl_context: ssl.SSLContext  # Homeport's own client trust (verification on)
    host: ServiceHost  # the one process Homeport's own Python services share


@dataclass(frozen=True)
class PortClaim:
    """A port `up` listens on for a capability, checked free before anything starts."""

    key: KeyPath  # where homeport.yaml sets it, for the error's file, line and key
    address: str
    port: int


@dataclass(frozen=True)
class FileProblem:
    """A file the model names that is missing or unsafe: said before anything starts."""

    key: KeyPath
    message: str
    hint: str = ""


@dataclass(frozen=True)
class SynapsePieces:
    """What a capability adds to one homeserver's `homeserver.yaml`.

    Modules run before the administrator's own (`synapse: modules:`), application
    service registrations likewise; `resources` are named on the homeserver's
    listeners (and its request-serving workers'); `settings` are top-level keys,
    which the administrator's `synapse:` passthrough may still override.
    """

    modules: Sequence[Mapping[str, Any]] = ()
    module_config: Mapping[str, Any] = field(default_factory=dict)  # into the Homeport module's
    app_service_config_files: Sequence[str] = ()
    resources: Sequence[str] = ()
    listeners: Sequence[Mapping[str, Any]] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)


NO_PIECES = SynapsePieces()

EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 - a pod's: the cluster's network policies guard it


def merge_pieces(pieces: Sequence[SynapsePieces]) -> SynapsePieces:
    """Every capability's pieces for one homeserver as one, in registry order."""
    module_config: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for piece in pieces:
        module_config.update(piece.module_config)
        settings.update(piece.settings)
    return SynapsePieces(
        modules=[m for piece in pieces for m in piece.modules],
        module_config=module_config,
        app_service_config_files=[f for piece in pieces for f in piece.app_service_config_files],
        resources=list(dict.fromkeys(r for piece in pieces for r in piece.resources)),
        listeners=[listener for piece in pieces for listener in piece.listeners],
        settings=settings,
    )


@dataclass(frozen=True)
class Preparing:
    """What `materialize` writes with: the data folder, the local CA, and `only`: just that
    homeserver's part (a restart), or None for the whole deployment."""

    layout: DeploymentLayout
    ca: CertificateAuthority
    only: str | None = None


@dataclass(frozen=True)
class PodFile:
    """A file of this machine that a homeserver's Synapse pod needs for a capability's
    pieces, at the path its homeserver.yaml names; `key`: its name in Synapse's Secret
    (the file's own name when None)."""

    path: Path
    key: str | None = None


@dataclass(frozen=True)
class ClusterProcess:
    """A role whose pods run `homeport COMMAND...` with /health on a loopback port."""

    container: str  # the container's name (and its Deployment's, unless beside Synapse)
    command: tuple[str, ...]  # after `homeport`; "{config}" stands for the model's path
    health_port: int
    cpu_request: str
    memory_request: str
    memory_limit: str
    # A second container of Synapse's pod (Synapse reaches it on the pod's loopback):
    # its state in the part `state_subpath` of Synapse's volume, at `state_dir` (in
    # the data folder).
    beside_synapse: bool = False
    state_subpath: str | None = None
    state_dir: str | None = None


@dataclass(frozen=True)
class ClusterWeb:
    """A role that serves HTTPS on its own host: behind a proxy on one machine (the nginx
    target), in the services' namespace behind the Ingress in a cluster."""

    command: tuple[str, ...]  # after `homeport`; "{config}" stands for the model's path
    description: str  # what the proxy's configuration says of it, in a comment
    address: str  # where it listens on one machine
    port: int
    host: str
    certificate: Path  # of this machine: its TLS Secret's
    key: Path
    open_paths: tuple[str, ...] = ()  # the Ingress lets anyone reach these
    admin_paths: tuple[str, ...] = ("/",)  # only from `proxy.admin_from`


@dataclass(frozen=True)
class ClusterRole:
    """One of a capability's services in a Kubernetes cluster, and what its pods get.

    The Kubernetes target renders its pods; the pods get `files` (of this machine:
    the data folder's or ones the model names) besides the CA certificates, and the
    service account of each homeserver it `reaches` (whose admin API it uses), and
    nothing more: no pod holds more secrets than its work needs.
    """

    name: str  # its service name: "audit-internal", "groupsync", "conference", "admin"
    homeserver: str | None  # whose namespace it runs in; None: the services' namespace
    files: tuple[Path, ...] = ()
    reaches: tuple[str, ...] = ()
    process: ClusterProcess | None = None
    web: ClusterWeb | None = None


def imported(target: str) -> Any:
    """The attribute a "module:attribute" string names, its module imported now: how the
    command line and the website load a capability's parts only when they are used."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def templates_of(pages: WebsitePages) -> Path:
    """The folder of a tab's templates: `templates/` beside its module."""
    module = importlib.import_module(pages.module)
    assert module.__file__ is not None
    return Path(module.__file__).parent / "templates"


@dataclass(frozen=True)
class RoomsColumn:
    """A column a capability adds to the website's Rooms table.

    `marks` names an async function of its tab's module, taking the website's `Site` and
    a homeserver's name: the room IDs its cell marks, or None where the column does not
    apply to that homeserver. `cell` is the template of one cell, rendered with the row
    (`r`), `marked` and the page's context.
    """

    header: str
    marks: str
    cell: str


@dataclass(frozen=True)
class WebsitePages:
    """A tab a capability adds to the admin website, after the website's own, at `/name`.

    `module` (imported by the website only) holds the tab's Starlette routes as `ROUTES`;
    the folder `templates/` beside it the tab's templates, which extend the website's
    `base.html` and set `tab` to `name`.
    """

    name: str
    label: str
    module: str
    shown: Callable[[Deployment], bool] = lambda _deployment: True
    rooms_column: RoomsColumn | None = None

    @property
    def path(self) -> str:
        return f"/{self.name}"


@dataclass(frozen=True)
class StatusContext:
    """What a capability's part of `homeport status` is gathered with."""

    layout: DeploymentLayout
    ssl_context: ssl.SSLContext | None  # None before the local CA exists
    services: Mapping[str, Mapping[str, Any]]  # `status["services"]`, by service name


class Capability:
    """The contributions of one capability; each hook's default contributes nothing."""

    name: str = ""

    # Commands it adds to `homeport`: (name, "module:attribute"), loaded when run.
    commands: tuple[tuple[str, str], ...] = ()

    # Its tab of the admin website, if it has one.
    website: WebsitePages | None = None

    # Keys it adds to each homeserver's entry of `status --json`, and to the top level.
    homeserver_status_keys: tuple[str, ...] = ()
    status_keys: tuple[str, ...] = ()

    def services(self, deployment: Deployment, context: ServiceContext) -> list[Service]:
        """The processes `up` supervises for it, in start order."""
        return []

    def hosted_main(
        self, deployment: Deployment, service: str, registered: Sequence[Capability]
    ) -> HostedMain | None:
        """In the host process: what runs its hosted service named `service`, if it is one
        of its own (the services it returns as `HostedService`). `registered`: every
        capability, for a service that gathers what the others contribute."""
        return None

    def controllable(self, deployment: Deployment, layout: DeploymentLayout) -> dict[str, Path]:
        """Its services `homeport stop` and `start` take by name, with each one's log."""
        return {}

    def ports(self, deployment: Deployment) -> list[PortClaim]:
        return []

    def file_problems(self, deployment: Deployment) -> list[FileProblem]:
        """Files the model names for it that are missing or readable by others."""
        return []

    def writable_paths(self, deployment: Deployment) -> list[Path]:
        """Folders outside the data folder it writes to (a sandbox must leave them open)."""
        return []

    def certificate_hosts(self, deployment: Deployment) -> list[str]:
        """Hosts the local CA must issue a certificate for (its NameConstraints)."""
        return []

    def materialize(self, deployment: Deployment, preparing: Preparing) -> None:
        """Write what it needs before start (secrets made once, certificates, registrations)."""

    def in_cluster(self, cluster: Deployment) -> Deployment:
        """The model as the pods of a cluster load it, with what it changes of its own
        section there (services listen on every address of their pod, say)."""
        return cluster

    def cluster_roles(self, deployment: Deployment, layout: DeploymentLayout) -> list[ClusterRole]:
        """Its services in a Kubernetes cluster (`layout`: this machine's data folder)."""
        return []

    def synapse_pod_files(
        self, deployment: Deployment, name: str, layout: DeploymentLayout
    ) -> list[PodFile]:
        """What homeserver `name`'s Synapse pod needs in a cluster for what `synapse` adds."""
        return []

    def synapse(self, deployment: Deployment, name: str, layout: DeploymentLayout) -> SynapsePieces:
        """What it adds to homeserver `name`'s `homeserver.yaml`. Pure."""
        return NO_PIECES

    def restart_identity(self, deployment: Deployment, name: str) -> dict[str, Any]:
        """What of it on homeserver `name` a restart cannot change (a new `up` can)."""
        return {}

    async def homeserver_status(
        self, deployment: Deployment, name: str, context: StatusContext, ready: bool
    ) -> dict[str, Any]:
        """Its keys (`homeserver_status_keys`) in homeserver `name`'s status entry; `ready`:
        whether that homeserver answers. Gathered concurrently with the others'."""
        return dict.fromkeys(self.homeserver_status_keys)

    def status(self, deployment: Deployment, layout: DeploymentLayout) -> dict[str, Any]:
        """Its keys (`status_keys`) at the top level of `status --json`."""
        return dict.fromkeys(self.status_keys)

    def status_lines(self, status: Mapping[str, Any]) -> list[str]:
        """Lines (Rich markup) under the `homeport status` table, read from the JSON."""
        return []
