"""`homeport init` and `homeport render`: a starter file, and what it renders to."""

from __future__ import annotations

import secrets as secrets_module
import sys
from pathlib import Path

import click
from rich.table import Table

from homeport import __version__
from homeport.cli._shared import config_option, console, lint_or_refuse, reports_errors
from homeport.config.checks import ingress_problems
from homeport.config.deployment import Deployment
from homeport.config.kubernetes import Kubernetes
from homeport.config.loader import load_deployment
from homeport.config.starter import write_starter
from homeport.errors import ConfigError, HomeportError
from homeport.files import ensure_dir, read_or_create_private, write_atomic, write_private
from homeport.runtime.prepare import materialize, preflight
from homeport.targets.kubernetes import (
    ClusterInputs,
    HomeserverSecrets,
    needed_files,
    render_kubernetes,
    service_account,
)
from homeport.targets.nginx import render_nginx
from homeport.targets.systemd import render_systemd
from homeport.trust import upstream_trust


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default="localhost", show_default=True, help="Host of both server names.")
@click.option(
    "--port",
    "base_port",
    default=8448,
    show_default=True,
    type=click.IntRange(1, 65530),
    help="Port of internal; external, the admin website, the two audit bots and the "
    "conference service get the next five.",
)
@reports_errors
def init(directory: Path, host: str, base_port: int) -> None:
    """Write a commented starter DIRECTORY/homeport.yaml for two federating homeservers.

    Running it again keeps the existing file, keys and secrets.

    \b
    Example:
      homeport init ./deployment --port 8448
    """
    target = directory / "homeport.yaml"
    if write_starter(target, host, base_port):
        console.print(f"[green]Wrote[/] {target}")
    else:
        console.print(f"[yellow]Keeping[/] the existing {target}")
    deployment, lines = load_deployment(target)
    problems = preflight(deployment, lines, target, check_ports=False)
    if problems:
        raise ConfigError(problems)
    layout = materialize(deployment)
    console.print(f"Keys, certificates and configs are in {layout.data_dir}")
    console.print(f"Next: [bold]homeport up -c {target}[/]")


@click.command()
@config_option
@click.option(
    "--target",
    type=click.Choice(["synapse", "systemd", "nginx", "kubernetes"]),
    default="synapse",
    show_default=True,
    help="synapse: every homeserver's config into the data folder; systemd: units "
    "that run the deployment under systemd, into --out; nginx: the reverse proxy of "
    "`proxy:` (every host on one port), into --out; kubernetes: kustomize bases, one "
    "namespace per homeserver, into --out.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the files of a --target other than synapse go.",
)
@reports_errors
def render(config_path: Path, target: str, out_dir: Path | None) -> None:
    """Render every homeserver's Synapse config into the data folder, for reading.

    Secrets and keys are created once and kept; configs are rendered anew.
    With --target systemd, writes `homeport.service` (one hardened unit that
    runs `homeport up`) and its sysusers and tmpfiles entries into --out; with
    --target nginx, the proxy's `homeport.conf` and what it needs.
    """
    deployment, lines = load_deployment(config_path)
    lint_or_refuse(deployment, lines, config_path)
    problems = preflight(deployment, lines, config_path, check_ports=False)
    if problems:
        raise ConfigError(problems)
    if target != "synapse":
        if out_dir is None:
            raise HomeportError(f"--target {target} writes files: name a folder with --out DIR")
        if target == "nginx":
            rendered = _render_nginx(deployment, config_path, out_dir)
        elif target == "kubernetes":
            ingress = ingress_problems(deployment, config_path, lines)
            if ingress:
                raise ConfigError(ingress)
            rendered = _render_kubernetes(deployment)
        else:
            rendered = render_systemd(deployment, config_path, Path(sys.executable))
        write_files(out_dir, rendered)
        table = Table("file", title=f"Rendered for {target} into {out_dir}")
        for name in rendered:
            table.add_row(name)
        console.print(table)
        return
    layout = materialize(deployment)
    table = Table("homeserver", "homeserver.yaml", "log config", title="Rendered")
    for name in deployment.homeservers:
        files = layout.homeserver(name)
        table.add_row(name, str(files.config_file), str(files.log_config_file))
    console.print(table)


def _render_nginx(deployment: Deployment, config_path: Path, out_dir: Path) -> dict[str, str]:
    """The proxy's files; the certificates it names are made first, as `up` makes them."""
    if deployment.proxy is None:
        raise HomeportError(
            f"{config_path} has no `proxy:` section: add one (`proxy: {{port: 443}}` serves "
            "every homeserver on 443), see docs/deployment.md"
        )
    layout = materialize(deployment)
    return render_nginx(deployment, layout, out_dir.resolve(), upstream_trust(deployment, layout))


def _render_kubernetes(deployment: Deployment) -> dict[str, str]:
    """The manifests, with the keys and secrets of the data folder (made once, as by `up`)."""
    if deployment.kubernetes is None:
        deployment = deployment.model_copy(update={"kubernetes": Kubernetes()})
    layout = materialize(deployment)
    secrets = {}
    for name, hs in deployment.homeservers.items():
        files = layout.homeserver(name)
        password = read_or_create_private(
            layout.kubernetes_postgres_password(name), secrets_module.token_urlsafe(32).encode()
        )
        if hs.tls is not None:
            pair = (hs.tls.certificate.read_text(), hs.tls.key.read_text())
            tls = {hs.tls_name: pair, hs.served_host: pair}
            listener = pair
        else:
            listener = (files.tls_certificate.read_text(), files.tls_key.read_text())
            tls = {hs.tls_name: listener}
            if hs.served_host != hs.tls_name:
                tls[hs.served_host] = (
                    files.public_tls_certificate.read_text(),
                    files.public_tls_key.read_text(),
                )
        # The pods share one service account: that of this machine, or one made once.
        account = files.service_account
        if not account.exists():
            account = layout.kubernetes_service_account(name)
            read_or_create_private(
                account, service_account(hs, None, secrets_module.token_urlsafe(32)).encode()
            )
        replication_secret = redis_password = ""
        if hs.workers.count:
            replication_secret = files.replication_secret.read_text().strip()
            redis_password = (
                read_or_create_private(
                    layout.kubernetes_redis_password(name),
                    secrets_module.token_urlsafe(32).encode(),
                )
                .decode()
                .strip()
            )
        secrets[name] = HomeserverSecrets(
            signing_key=files.signing_key.read_text(),
            registration_shared_secret=files.registration_shared_secret.read_text(),
            macaroon_secret_key=files.macaroon_secret_key.read_text(),
            form_secret=files.form_secret.read_text(),
            postgres_password=password.decode().strip(),
            tls=tls,
            listener=listener,
            service_account=account.read_text(),
            replication_secret=replication_secret,
            redis_password=redis_password,
        )
    store_password = read_or_create_private(
        layout.kubernetes_postgres_password("services"), secrets_module.token_urlsafe(32).encode()
    )
    ca_files = [layout.ca_certificate.read_text()]
    ca_files += [path.read_text() for path in deployment.trusted_ca_files]
    inputs = ClusterInputs(
        synapse_version=synapse_version(),
        homeport_version=__version__,
        homeservers=secrets,
        ca_files=ca_files,
        files={path: path.read_text() for path in needed_files(deployment)},
        store_password=store_password.decode().strip(),
    )
    return render_kubernetes(deployment, inputs)


def synapse_version() -> str:
    from synapse import __version__

    return __version__.split()[0]


def write_files(out_dir: Path, files: dict[str, str]) -> None:
    """Into `out_dir` (sub-folders made); files holding secrets with mode 0600."""
    ensure_dir(out_dir)
    for name, text in files.items():
        path = out_dir / name
        ensure_dir(path.parent)
        if "secret" in path.name or path.suffix in (".key", ".pem"):
            write_private(path, text.encode())
        else:
            write_atomic(path, text.encode())
