"""Every target by its name (`homeport render --target NAME`), each a `Target`.

Each entry is a small adapter around its renderer: it checks what the model
must have for that target, gathers what the renderer reads besides the model
(the data folder, prepared through the context; the local CA; certificates),
and hands over the renderer's files. The renderers stay pure.
"""

from __future__ import annotations

from homeport.config.checks import ingress_problems
from homeport.config.deployment import Deployment
from homeport.config.kubernetes import Kubernetes
from homeport.errors import ConfigError, HomeportError
from homeport.targets.interface import (
    RenderContext,
    Rendered,
    Summary,
    Target,
    files_into,
)
from homeport.targets.kubernetes import render_kubernetes
from homeport.targets.kubernetes_inputs import cluster_inputs
from homeport.targets.nginx import render_nginx
from homeport.targets.prometheus import render_prometheus
from homeport.targets.systemd import render_systemd
from homeport.trust import upstream_trust


def synapse(deployment: Deployment, context: RenderContext) -> Rendered:
    """Every homeserver's config, rendered into the data folder by preparing it."""
    layout = context.prepare(deployment)
    rows = []
    for name in deployment.homeservers:
        files = layout.homeserver(name)
        rows.append((name, str(files.config_file), str(files.log_config_file)))
    summary = Summary("Rendered", ("homeserver", "homeserver.yaml", "log config"), tuple(rows))
    return Rendered({}, summary)


def systemd(deployment: Deployment, context: RenderContext) -> Rendered:
    out_dir = context.out("systemd")
    return files_into(
        "systemd", out_dir, render_systemd(deployment, context.config_path, context.python)
    )


def nginx(deployment: Deployment, context: RenderContext) -> Rendered:
    """The proxy's files; the certificates it names are made first, as `up` makes them."""
    out_dir = context.out("nginx")
    if deployment.proxy is None:
        raise HomeportError(
            f"{context.config_path} has no `proxy:` section: add one (`proxy: {{port: 443}}` "
            "serves every homeserver on 443), see docs/deployment.md"
        )
    layout = context.prepare(deployment)
    trust = upstream_trust(deployment, layout)
    return files_into("nginx", out_dir, render_nginx(deployment, layout, out_dir.resolve(), trust))


def prometheus(deployment: Deployment, context: RenderContext) -> Rendered:
    """Alerting rules that match the alerts service's own, and a scrape job for it."""
    out_dir = context.out("prometheus")
    if deployment.alerts is None:
        raise HomeportError(
            f"{context.config_path} has no `alerts:` section: add one (`alerts: {{port: 8455}}`) "
            "so that Homeport checks federation and exposes what the rules read, see "
            "docs/alerts.md"
        )
    return files_into("prometheus", out_dir, render_prometheus(deployment.alerts))


def kubernetes(deployment: Deployment, context: RenderContext) -> Rendered:
    """The manifests, with the keys and secrets of the data folder (made once, as by `up`)."""
    out_dir = context.out("kubernetes")
    ingress = ingress_problems(deployment, context.config_path, context.lines)
    if ingress:
        raise ConfigError(ingress)
    if deployment.kubernetes is None:
        deployment = deployment.model_copy(update={"kubernetes": Kubernetes()})
    layout = context.prepare(deployment)
    manifests = render_kubernetes(deployment, cluster_inputs(deployment, layout))
    return files_into("kubernetes", out_dir, manifests)


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("synapse", "every homeserver's config into the data folder", synapse),
        Target("systemd", "units that run the deployment under systemd, into --out", systemd),
        Target(
            "nginx",
            "the reverse proxy of `proxy:` (every host on one port), into --out",
            nginx,
        ),
        Target(
            "kubernetes", "kustomize bases, one namespace per homeserver, into --out", kubernetes
        ),
        Target(
            "prometheus",
            "alerting rules for federation incidents and a scrape job, into --out",
            prometheus,
        ),
    )
}
