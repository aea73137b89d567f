"""Model -> Synapse configuration. Pure: no disk, no network, no clock.

Each homeserver gets one TLS listener that carries federation (which also
serves `/_matrix/key/v2`) and the client API, so a server name with an
explicit port is all a sibling needs to reach it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import homeport.homeserver.workers as workers
from homeport.capability import SynapsePieces
from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.types import parse_postgres_url
from homeport.homeserver.listeners import listener_resources
from homeport.layout import DeploymentLayout, HomeserverLayout
from homeport.policy.effective import effective_whitelist, key_servers
from homeport.policy.siblings import sibling_ip_allowlist
from homeport.synapse_module.config import HomeportModuleConfig
from homeport.synapse_module.contract import HOMEPORT_MODULE

# Sized for an organisation of a few hundred people, many behind one NAT:
# Synapse's defaults are tuned for big public servers and would throttle an
# office that logs in at nine o'clock. Override any of them in `synapse:`.
SMALL_ORGANISATION_RATE_LIMITS: dict[str, Any] = {
    "rc_message": {"per_second": 2, "burst_count": 30},
    "rc_login": {
        "address": {"per_second": 0.5, "burst_count": 30},
        "account": {"per_second": 0.2, "burst_count": 10},
        "failed_attempts": {"per_second": 0.1, "burst_count": 5},
    },
    "rc_joins": {
        "local": {"per_second": 1, "burst_count": 20},
        "remote": {"per_second": 0.2, "burst_count": 20},
    },
    "rc_invites": {
        "per_room": {"per_second": 1, "burst_count": 20},
        "per_user": {"per_second": 0.2, "burst_count": 10},
    },
    # Sibling homeservers of one organisation talk a lot: let their
    # transactions through without sleeping, but still bound a runaway peer
    # (a homeserver whose whitelist is open gets Synapse's limits instead).
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 50,
        "sleep_delay": 250,
        "reject_limit": 200,
        "concurrent": 10,
    },
}


# A homeserver open to the whole federation meets strangers: for what other
# servers send (per origin) and invites a user receives, Synapse's own limits.
OPEN_FEDERATION_RATE_LIMITS: dict[str, Any] = {
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 10,
        "sleep_delay": 500,
        "reject_limit": 50,
        "concurrent": 3,
    },
}
OPEN_FEDERATION_INVITES_PER_USER = {"per_second": 0.003, "burst_count": 5}


def rate_limits(deployment: Deployment, name: str) -> dict[str, Any]:
    """Homeport's limits; Synapse's own toward servers the organisation does not know."""
    limits = copy.deepcopy(SMALL_ORGANISATION_RATE_LIMITS)
    if effective_whitelist(deployment, name) is None:
        limits.update(copy.deepcopy(OPEN_FEDERATION_RATE_LIMITS))
        limits["rc_invites"]["per_user"] = dict(OPEN_FEDERATION_INVITES_PER_USER)
    return limits


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in `override` replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def synapse_policy_settings(deployment: Deployment, name: str) -> dict[str, Any]:
    """The Synapse settings that carry the policy of homeserver `name`."""
    policy = deployment.homeservers[name].policy
    settings: dict[str, Any] = {
        "allow_public_rooms_over_federation": policy.allow_public_rooms_over_federation,
        "enable_room_list_search": policy.enable_room_list_search,
        "allow_profile_lookup_over_federation": policy.allow_profile_lookup_over_federation,
        "allow_device_name_lookup_over_federation": (
            policy.allow_device_name_lookup_over_federation
        ),
        "user_directory": policy.user_directory.model_dump(),
        "limit_profile_requests_to_users_who_share_rooms": (
            policy.limit_profile_requests_to_users_who_share_rooms
        ),
        "require_auth_for_profile_requests": policy.require_auth_for_profile_requests,
    }
    if policy.room_list_publication_rules is not None:
        settings["room_list_publication_rules"] = [
            rule.model_dump() for rule in policy.room_list_publication_rules
        ]
    whitelist = effective_whitelist(deployment, name)
    if whitelist is not None:
        settings["federation_domain_whitelist"] = whitelist
    return settings


def _database(hs: Homeserver, layout: HomeserverLayout) -> dict[str, Any]:
    if hs.database == "sqlite":
        return {"name": "sqlite3", "args": {"database": str(layout.sqlite_database)}}
    url = parse_postgres_url(hs.database)
    args: dict[str, Any] = {"database": url.database, "cp_min": 5, "cp_max": 10}
    if url.user:
        args["user"] = url.user
    if url.password:
        args["password"] = url.password
    if url.host:
        args["host"] = url.host
    if url.port:
        args["port"] = url.port
    return {"name": "psycopg2", "txn_limit": 10000, "args": args}


def render_homeserver(
    deployment: Deployment, name: str, layout: DeploymentLayout, pieces: SynapsePieces
) -> dict[str, Any]:
    """The complete `homeserver.yaml` of homeserver `name`, as a dict.

    `pieces`: what the capabilities add to it (`homeport.capabilities.synapse_pieces`).
    """
    hs = deployment.homeservers[name]
    files = layout.homeserver(name)
    certificate = hs.tls.certificate if hs.tls else files.tls_certificate
    key = hs.tls.key if hs.tls else files.tls_key
    config: dict[str, Any] = {
        "server_name": hs.server_name,
        "public_baseurl": hs.base_url + "/",
        "report_stats": False,
        "listeners": [
            {
                "port": hs.port,
                "bind_addresses": [hs.address],
                "type": "http",
                "tls": True,
                # Behind the proxy, the client's address is in X-Forwarded-For
                # (rate limits, logs); the listener is private then.
                "x_forwarded": deployment.proxy is not None,
                "resources": [{"names": listener_resources(pieces), "compress": False}],
            }
        ],
        "tls_certificate_path": str(certificate),
        "tls_private_key_path": str(key),
        "federation_verify_certificates": True,
        "federation_custom_ca_list": [
            str(layout.ca_certificate),
            *(str(p) for p in deployment.trusted_ca_files),
        ],
        # Never matrix.org (unreachable from a closed deployment, and outside it):
        # each server itself, or for a closed homeserver the siblings that federate
        # beyond it, whose rooms may hold servers it cannot ask (policy.effective).
        "trusted_key_servers": [
            {"server_name": server} for server in key_servers(deployment, name)
        ],
        "suppress_key_server_warning": True,
        "database": _database(hs, files),
        "media_store_path": str(files.media_store),
        "signing_key_path": str(files.signing_key),
        "registration_shared_secret_path": str(files.registration_shared_secret),
        "macaroon_secret_key_path": str(files.macaroon_secret_key),
        "form_secret_path": str(files.form_secret),
        "log_config": str(files.log_config_file),
        "enable_registration": False,
        "url_preview_enabled": False,
        **rate_limits(deployment, name),
        # Passthrough may add other keys of this section (client_timeout...).
        "federation": hs.federation_retries.synapse_settings(),
    }
    allowlist = sibling_ip_allowlist(deployment, name)
    if allowlist:
        config["ip_range_whitelist"] = allowlist
    config.update(synapse_policy_settings(deployment, name))
    config.update(pieces.settings)
    shared_with_workers = workers.main_settings(deployment, name, files)
    if shared_with_workers:
        config.update(shared_with_workers)
        assert hs.workers.port_base is not None
        config["listeners"].append(workers.replication_listener(hs.workers.port_base))
    config["listeners"] += [dict(listener) for listener in pieces.listeners]
    passthrough = dict(hs.synapse)
    # The administrator's own modules run after ours; ours are never dropped.
    config["modules"] = [
        homeport_module(hs, pieces.module_config),
        *(dict(module) for module in pieces.modules),
        *passthrough.pop("modules", []),
    ]
    # Likewise the administrator's application services (bridges) besides ours.
    registrations = list(pieces.app_service_config_files)
    registrations += passthrough.pop("app_service_config_files", [])
    if registrations:
        config["app_service_config_files"] = registrations
    return deep_merge(config, passthrough)


def homeport_module(hs: Homeserver, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The Homeport module's entry, its config typed by the model the module parses:
    the homeserver's own settings and what the capabilities add (`audit`,
    `internal_spaces`)."""
    config = HomeportModuleConfig.model_validate(
        {"rooms_federation": hs.policy.rooms.federation, **extra}
    )
    return {
        "module": HOMEPORT_MODULE,
        "config": config.model_dump(mode="json", exclude_none=True),
    }
