"""Lint: mistakes in a federation policy that Synapse would accept silently. Pure.

Each check reads the model and yields findings; it never touches the disk or
the network. `homeport lint` prints them and `homeport up` refuses to start on
an error, so a finding is an error only when the result is certainly not what
the file asks for (federation that cannot work, a setting Synapse refuses).
"""

from __future__ import annotations

from homeport.config.deployment import Deployment
from homeport.policy.lint.findings import Check, Finding, KeyPath, Severity
from homeport.policy.lint.network import (
    check_admin_api_exposed,
    check_admin_open_through_proxy,
    check_federation_bypasses_proxy,
    check_loopback_siblings,
    check_server_name_undelegated,
)
from homeport.policy.lint.retries import (
    check_retries_hammer_dead_servers,
    check_retries_hide_outages,
)
from homeport.policy.lint.sharing import (
    check_device_names_to_everyone,
    check_internal_spaces_without_effect,
    check_internal_users_profiles,
    check_never_federated_with_public_rooms,
    check_profile_limit_needs_auth,
    check_public_rooms_nothing_published,
    check_public_rooms_without_directory,
    check_search_all_users,
)
from homeport.policy.lint.whitelist import (
    check_empty_whitelist,
    check_entries_without_port,
    check_mixed_rooms,
    check_own_name,
    check_patterns_in_whitelist,
    check_symmetry,
    check_trusted_key_servers,
    check_user_ids_in_whitelist,
    check_whitelist_unreachable,
)

__all__ = ["CHECKS", "Check", "Finding", "KeyPath", "Severity", "has_errors", "lint"]

# For each homeserver, findings of one severity are listed in this order.
CHECKS: tuple[Check, ...] = (
    check_user_ids_in_whitelist,
    check_patterns_in_whitelist,
    check_own_name,
    check_entries_without_port,
    check_symmetry,
    check_trusted_key_servers,
    check_never_federated_with_public_rooms,
    check_search_all_users,
    check_empty_whitelist,
    check_profile_limit_needs_auth,
    check_device_names_to_everyone,
    check_public_rooms_without_directory,
    check_public_rooms_nothing_published,
    check_retries_hide_outages,
    check_retries_hammer_dead_servers,
    check_loopback_siblings,
    check_admin_api_exposed,
    check_admin_open_through_proxy,
    check_server_name_undelegated,
    check_federation_bypasses_proxy,
    check_whitelist_unreachable,
    check_mixed_rooms,
    check_internal_spaces_without_effect,
    check_internal_users_profiles,
)


def lint(deployment: Deployment) -> list[Finding]:
    """Every finding for every homeserver, errors first, in file order otherwise."""
    findings = [
        finding
        for name in deployment.homeservers
        for check in CHECKS
        for finding in check(deployment, name)
    ]
    return sorted(findings, key=lambda f: f.severity != "error")


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
