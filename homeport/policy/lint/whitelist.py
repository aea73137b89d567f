"""Checks of federation_domain_whitelist and what leans on it. Pure.

Synapse compares server names exactly and grants federation to whole
servers, so an entry written almost right fails silently: these checks catch
the entries that cannot mean what they say or can never be reached, the
lists that leave out a server that lists them, and the settings (key
servers, lookups over federation) that the list contradicts or makes useless.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address

from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.types import split_server_name
from homeport.policy.effective import effective_whitelist, key_servers
from homeport.policy.lint.findings import Finding, KeyPath

WHITELIST: KeyPath = ("policy", "federation_domain_whitelist")
TWO_HOMESERVERS = (
    "Trust is server-scoped: a homeserver federates with a whole server, never with "
    "chosen users on it. To let only some people talk to the outside, give them an "
    "account on a second homeserver that federates (the internal/external layout "
    "of `homeport init`), and keep this one closed."
)


def _server_names(deployment: Deployment) -> dict[str, str]:
    """Server name -> homeserver name, for every homeserver of the file."""
    return {hs.server_name: name for name, hs in deployment.homeservers.items()}


def _is_user_id(entry: str) -> bool:
    return entry.startswith("@")


def _is_pattern(entry: str) -> bool:
    return "*" in entry


def _plain_entries(hs: Homeserver) -> Iterator[tuple[int, str]]:
    """Whitelist entries that are meant as names (not user IDs or patterns)."""
    for index, entry in enumerate(hs.policy.federation_domain_whitelist or []):
        if not _is_user_id(entry) and not _is_pattern(entry):
            yield index, entry


def check_user_ids_in_whitelist(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    for index, entry in enumerate(hs.policy.federation_domain_whitelist or []):
        if _is_user_id(entry):
            server = entry.partition(":")[2] or "their server"
            yield Finding(
                "per-user-federation",
                "error",
                name,
                (*WHITELIST, index),
                f"{entry!r} is a user, but federation is granted to servers",
                TWO_HOMESERVERS,
                f"list the server {server!r} to federate with all of its users, or move "
                "the people who may talk to it to a homeserver that federates",
            )


def check_patterns_in_whitelist(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    for index, entry in enumerate(hs.policy.federation_domain_whitelist or []):
        if _is_pattern(entry) and not _is_user_id(entry):
            yield Finding(
                "whitelist-pattern",
                "error",
                name,
                (*WHITELIST, index),
                f"{entry!r} looks like a pattern, but Synapse compares server names exactly",
                "federation_domain_whitelist has no wildcards: this entry would match only a "
                "server literally named so, which cannot exist.",
                "list each server name in full, port included",
            )


def check_own_name(deployment: Deployment, name: str) -> Iterator[Finding]:
    """The own name is added anyway; warn only where it was written, and written wrong."""
    hs = deployment.homeservers[name]
    own = split_server_name(hs.server_name)
    for index, entry in _plain_entries(hs):
        if entry in deployment.homeservers or entry in _server_names(deployment):
            continue
        address = split_server_name(entry)
        if address.host != own.host or address.port is None:
            continue  # a portless own host is reported by check_entries_without_port
        yield Finding(
            "whitelist-own-name-mistyped",
            "warning",
            name,
            (*WHITELIST, index),
            f"{entry!r} looks like this server, but its name is {hs.server_name!r}",
            "Synapse compares server names exactly, port included, so this entry "
            "allows some other server on the same host. Homeport adds "
            f"{hs.server_name!r} itself, as Synapse needs.",
            f"remove {entry!r}, or write {name!r}",
        )


def check_entries_without_port(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    for index, entry in _plain_entries(hs):
        if entry in deployment.homeservers or entry in _server_names(deployment):
            continue
        address = split_server_name(entry)
        if address.port is not None:
            continue
        listed = set(_explicit(deployment, name)) | {hs.server_name}
        meant = [
            (other_name, other.server_name)
            for other_name, other in deployment.homeservers.items()
            if split_server_name(other.server_name).host == address.host
            and split_server_name(other.server_name).port is not None
            and other.server_name not in listed  # already allowed under its full name
        ]
        if not meant:
            continue
        described = ", ".join(f"{n} ({server})" for n, server in meant)
        yield Finding(
            "whitelist-entry-without-port",
            "error",
            name,
            (*WHITELIST, index),
            f"{entry!r} has no port, but on that host this file has {described}",
            "Synapse compares server names exactly, port included: this entry matches "
            "none of them, so federation with them is refused in both directions.",
            f"write the homeserver's name from this file ({' or '.join(n for n, _ in meant)}) "
            "or its full server name",
        )


def check_symmetry(deployment: Deployment, name: str) -> Iterator[Finding]:
    """A lists B by intent, B's own list leaves A out: report it on B, where it is fixed."""
    hs = deployment.homeservers[name]
    mine = effective_whitelist(deployment, name)
    if mine is None:
        return
    for other_name, other in deployment.homeservers.items():
        if other_name == name or hs.server_name not in _explicit(deployment, other_name):
            continue
        if other.server_name not in mine:
            yield Finding(
                "whitelist-asymmetric",
                "error",
                name,
                WHITELIST,
                f"{other_name} lists {name} in its whitelist, but {name}'s whitelist "
                f"leaves {other_name} out",
                f"Federation needs both sides: {name} refuses every request from "
                f"{other_name} (403) and never sends to it, so rooms shared between their "
                "users break half-way: invites, joins and messages fail in one direction.",
                f"add {other_name!r} to {name}'s federation_domain_whitelist, or remove "
                f"{name!r} from {other_name}'s",
            )


def _explicit(deployment: Deployment, name: str) -> list[str]:
    """Server names written in a homeserver's whitelist (without the implied own name)."""
    hs = deployment.homeservers[name]
    return [
        deployment.homeservers[e].server_name if e in deployment.homeservers else e
        for e in hs.policy.federation_domain_whitelist or []
    ]


def _trusted_key_servers(hs: Homeserver) -> list[tuple[int, str]]:
    entries = hs.synapse.get("trusted_key_servers")
    if not isinstance(entries, list):
        return []
    return [
        (index, str(entry["server_name"]))
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and "server_name" in entry
    ]


def check_trusted_key_servers(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    allowed = effective_whitelist(deployment, name)
    if allowed == [hs.server_name]:
        return  # no federation: reported as setting-without-federation
    own_servers = _server_names(deployment)
    for index, server in _trusted_key_servers(hs):
        key: KeyPath = ("synapse", "trusted_key_servers", index, "server_name")
        if server == hs.server_name:
            continue
        if allowed is not None and server not in allowed:
            yield Finding(
                "trusted-key-server-not-whitelisted",
                "error",
                name,
                key,
                f"key server {server!r} is not on {name}'s whitelist",
                "Synapse never contacts servers outside federation_domain_whitelist, so "
                "every key lookup through it fails and remote events cannot be verified.",
                "use `trusted_key_servers: []` (servers then fetch each other's keys "
                "directly) or a homeserver of this file",
            )
        elif server not in own_servers:
            yield Finding(
                "trusted-key-server-outside",
                "warning",
                name,
                key,
                f"key server {server!r} is outside this deployment",
                f"{name} will ask {server!r} for the signing keys of every server it "
                "federates with, telling it whom this organisation talks to and trusting "
                "its answers.",
                "use `trusted_key_servers: []` (Homeport's default) or a homeserver of this file",
            )


def check_empty_whitelist(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    policy = hs.policy
    if policy.federation_domain_whitelist != []:
        return
    meaningless = [
        key
        for key in (
            "allow_public_rooms_over_federation",
            "allow_profile_lookup_over_federation",
            "allow_device_name_lookup_over_federation",
        )
        if key in policy.model_fields_set and getattr(policy, key)
    ]
    for key in meaningless:
        yield Finding(
            "setting-without-federation",
            "warning",
            name,
            ("policy", key),
            f"{key} is true, but federation_domain_whitelist is [] (no federation)",
            f"No other server can reach {name}, so this setting has no effect; it may "
            "mislead a reader into thinking something is shared.",
            f"remove {key}, or list the servers to federate with",
        )
    for index, server in _trusted_key_servers(hs):
        yield Finding(
            "setting-without-federation",
            "warning",
            name,
            ("synapse", "trusted_key_servers", index, "server_name"),
            f"key server {server!r} is set, but federation_domain_whitelist is [] (no federation)",
            f"{name} never needs remote keys without federation.",
            "remove trusted_key_servers (Homeport renders [])",
        )


def check_whitelist_unreachable(deployment: Deployment, name: str) -> Iterator[Finding]:
    """A whitelisted server on a loopback or private address that is not a sibling."""
    hs = deployment.homeservers[name]
    siblings = set(deployment.homeservers) | set(_server_names(deployment))
    sibling_hosts = {split_server_name(s).host for s in _server_names(deployment)}
    for index, entry in _plain_entries(hs):
        host = split_server_name(entry).host
        if entry in siblings or host in sibling_hosts:
            continue  # a sibling's name, or meant as one (whitelist-entry-without-port)
        host = host.strip("[]")
        try:
            literal = ip_address(host)
        except ValueError:
            local = host == "localhost" or host.endswith(".localhost")
        else:
            local = not literal.is_global
        if not local:
            continue
        yield Finding(
            "whitelist-unreachable",
            "warning",
            name,
            (*WHITELIST, index),
            f"{entry!r} is on a loopback or private address and is not a homeserver of "
            "this file: Synapse will never send to it",
            "Synapse refuses outbound requests to loopback and private addresses "
            "(ip_range_blacklist); Homeport lifts that only for its own homeservers.",
            "name the server by a public name that resolves to it, or add it to this file "
            "as a homeserver",
        )


def check_mixed_rooms(deployment: Deployment, name: str) -> Iterator[Finding]:
    """A closed homeserver whose sibling federates more widely: its users can be in rooms
    with servers it does not federate with (the whitelist is no room membership)."""
    wider = key_servers(deployment, name)
    if not wider or "trusted_key_servers" in deployment.homeservers[name].synapse:
        return  # an administrator's own key servers are checked by check_trusted_key_servers
    names = {hs.server_name: other for other, hs in deployment.homeservers.items()}
    siblings = ", ".join(names[server] for server in wider)
    yield Finding(
        "whitelist-mixed-rooms",
        "warning",
        name,
        WHITELIST,
        f"{name}'s users can join rooms of {siblings} that hold users of servers {name} "
        "does not federate with",
        "federation_domain_whitelist stops requests between servers, not room membership. "
        f"{name} asks {siblings} for those servers' keys (trusted_key_servers, rendered by "
        "Homeport) so that such a join completes instead of hanging; its users then read "
        f"those rooms, and their messages reach those servers through {siblings}. "
        "`homeport verify` lists the rooms that mix servers (docs/visibility.md).",
        f"accept it, or close {siblings}'s whitelist to the servers {name} may talk to, or "
        f"keep {name}'s users out of {siblings}'s rooms",
    )
