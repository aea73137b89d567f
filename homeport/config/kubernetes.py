"""The `kubernetes:` section: how `homeport render --target kubernetes` lays the cluster out.

One namespace per homeserver (`<namespace_prefix><name>`), each a kustomize
base of its own; the homeservers' public hosts come from the same model as
on one machine (`public_host`, the server name), served by the cluster's
ingress controller on 443.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from homeport.config.base import StrictModel
from homeport.config.proxy import Network
from homeport.config.types import IpAddress
from homeport.config.workers import RedisUrl

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def check_prefix(value: str) -> str:
    if value and not _LABEL.match(value.rstrip("-") or "x"):
        raise ValueError(
            f"{value!r} cannot start a namespace name: lower-case letters, digits and '-'"
        )
    if len(value) > 30:
        raise ValueError(f"{value!r} is too long for a namespace prefix (30 characters at most)")
    return value


def check_label(value: str) -> str:
    if not _LABEL.match(value) or len(value) > 63:
        raise ValueError(
            f"{value!r} is not a Kubernetes name: lower-case letters, digits and '-', "
            "63 characters at most"
        )
    return value


def check_quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a size Kubernetes understands: write e.g. 10Gi")
    return value


Quantity = Annotated[str, AfterValidator(check_quantity)]
Label = Annotated[str, AfterValidator(check_label)]


class Kubernetes(StrictModel):
    """Where and how the deployment runs on a Kubernetes cluster."""

    namespace_prefix: Annotated[str, AfterValidator(check_prefix)] = Field(
        default="homeport-",
        description="Namespaces are this prefix and the homeserver's name "
        "(homeport-internal); Homeport's services go to `<prefix>services`.",
    )
    synapse_image: str | None = Field(
        default=None,
        description="Synapse's container image with Homeport's module "
        "(deploy/synapse.Dockerfile); left out: homeport-synapse:<the Synapse version here>.",
    )
    homeport_image: str | None = Field(
        default=None,
        description="The image of Homeport's services (deploy/homeport.Dockerfile); left out: "
        "homeport:<the Homeport version here>.",
    )
    pod_networks: list[Network] = Field(
        default_factory=lambda: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
        description="Address ranges of the cluster's pods: the website and the conference "
        "service trust X-Forwarded-For from connections out of these (the ingress "
        "controller's), and NetworkPolicies let only that controller reach them.",
    )
    ingress_class: str = Field(
        default="nginx", description="The IngressClass that serves the hosts on 443."
    )
    ingress_address: IpAddress | None = Field(
        default=None,
        description="The address the pods reach the ingress controller at through the "
        "public hosts, when it is private, loopback or link-local (an on-premises load "
        "balancer's 10.x, say): Synapse connects to no such address unless allowed, so "
        "sibling homeservers could not federate through it. Homeport allows exactly this "
        "one address (`ip_range_whitelist`); left out: a public address, nothing allowed.",
    )
    ingress_namespace: Label = Field(
        default="ingress-nginx",
        description="Namespace of the ingress controller: NetworkPolicies let it in.",
    )
    cert_manager_issuer: str | None = Field(
        default=None,
        description="A cert-manager ClusterIssuer for the hosts' certificates; left out: "
        "Secrets from the certificates Homeport uses on one machine.",
    )
    storage_class: str | None = Field(
        default=None, description="StorageClass of the volumes; left out: the cluster's default."
    )
    media_storage: Quantity = Field(
        default="10Gi", description="Size of each homeserver's volume (media, keys)."
    )
    bundled_postgres: bool = Field(
        default=True,
        description="Homeservers on `sqlite` get PostgreSQL in their namespace (a "
        "StatefulSet); false: SQLite on their volume. A postgresql:// URL is always used as is.",
    )
    postgres_image: str = Field(
        default="postgres:16", description="The bundled PostgreSQL's image."
    )
    postgres_storage: Quantity = Field(
        default="10Gi", description="Size of the bundled PostgreSQL's volume."
    )
    redis_url: RedisUrl | None = Field(
        default=None,
        description="The Redis that homeservers with `workers` replicate over in the cluster; "
        "left out: a Redis in each such homeserver's namespace (a StatefulSet, password "
        "generated once, reached only by that homeserver's Synapse processes). The "
        "`redis:` URL of one machine is not used in the cluster.",
    )
    redis_image: str = Field(default="redis:7", description="The bundled Redis's image.")
    store_storage: Quantity = Field(
        default="5Gi",
        description="Size of the volume of Homeport's store when it is bundled (the file "
        "says `store: {database: sqlite}`: the services share a PostgreSQL instead).",
    )
