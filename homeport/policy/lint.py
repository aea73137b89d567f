"""Lint: mistakes in a federation policy that Synapse would accept silently. Pure.

Each check reads the model and yields findings; it never touches the disk or
the network. `homeport lint` prints them and `homeport up` refuses to start on
an error, so a finding is an error only when the result is certainly not what
the file asks for (federation that cannot work, a setting Synapse refuses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Literal

from homeport.config.deployment import Deployment
from homeport.config.homeserver import Homeserver
from homeport.config.types import split_server_name
from homeport.policy.backoff import promise, spoken
from homeport.policy.effective import effective_whitelist, federation_allowed
from homeport.policy.siblings import sibling_address

Severity = Literal["error", "warning"]
KeyPath = tuple[str | int, ...]

WHITELIST: KeyPath = ("policy", "federation_domain_whitelist")
TWO_HOMESERVERS = (
    "Trust is server-scoped: a homeserver federates with a whole server, never with "
    "chosen users on it. To let only some people talk to the outside, give them an "
    "account on a second homeserver that federates (the internal/external layout "
    "of `homeport init`), and keep this one closed."
)


@dataclass(frozen=True)
class Finding:
    """One problem: what, where (a key under `homeservers.<name>`), why it matters, the fix.

    A finding about a section of its own (the proxy) gives that section's
    key in `section`; `key` is then under it.
    """

    id: str
    severity: Severity
    homeserver: str
    key: KeyPath
    message: str
    explanation: str
    fix: str
    section: KeyPath | None = None

    @property
    def path(self) -> KeyPath:
        """The key's full path in homeport.yaml."""
        if self.section is not None:
            return (*self.section, *self.key)
        return ("homeservers", self.homeserver, *self.key)


Check = Callable[[Deployment, str], Iterator[Finding]]


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


def check_never_federated_with_public_rooms(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    if policy.rooms.federation == "never" and policy.allow_public_rooms_over_federation:
        yield Finding(
            "public-rooms-of-never-federated-server",
            "warning",
            name,
            ("policy", "allow_public_rooms_over_federation"),
            f"{name}'s rooms are never federated, yet its room directory is open to other servers",
            "Synapse leaves non-federated rooms out of the directory it serves over "
            "federation, so other servers see only rooms created elsewhere that "
            f"{name}'s users published: probably not what either setting intends.",
            "set allow_public_rooms_over_federation: false, or rooms.federation: creator_choice",
        )


def _peers(deployment: Deployment, name: str) -> list[str]:
    """Homeservers of the file that this one federates with."""
    return [
        other
        for other in deployment.homeservers
        if other != name and federation_allowed(deployment, name, other)
    ]


def check_search_all_users(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    directory = hs.policy.user_directory
    if not directory.search_all_users or not directory.enabled or directory.exclude_remote_users:
        return
    allowed = effective_whitelist(deployment, name)
    if allowed is not None and allowed == [hs.server_name]:
        return
    peers = _peers(deployment, name)
    whom = ", ".join(peers) if peers else "other servers"
    yield Finding(
        "search-all-users-with-federation",
        "warning",
        name,
        ("policy", "user_directory", "search_all_users"),
        f"every user of {name} can find every user of {whom} that {name} has seen",
        "With search_all_users, user search covers everyone this server knows, not only "
        "people in public rooms or sharing a room with the searcher. Users of another "
        "server who share a space with people here become findable by everyone here, "
        "and anyone with an account here can enumerate the whole organisation.",
        "set user_directory.search_all_users: false, or exclude_remote_users: true",
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


def check_profile_limit_needs_auth(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    if (
        policy.limit_profile_requests_to_users_who_share_rooms
        and not policy.require_auth_for_profile_requests
    ):
        yield Finding(
            "profile-limit-needs-auth",
            "error",
            name,
            ("policy", "limit_profile_requests_to_users_who_share_rooms"),
            "limit_profile_requests_to_users_who_share_rooms needs "
            "require_auth_for_profile_requests",
            "Synapse refuses to start with this combination: it cannot tell who shares a "
            "room with an anonymous requester.",
            "also set require_auth_for_profile_requests: true",
        )


def check_device_names_to_everyone(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    if hs.policy.allow_device_name_lookup_over_federation and (
        hs.policy.federation_domain_whitelist is None
    ):
        yield Finding(
            "device-names-to-everyone",
            "warning",
            name,
            ("policy", "allow_device_name_lookup_over_federation"),
            f"{name} shows its users' device names to every server of the Matrix network",
            'Device names often say more than people think ("Alice\'s work laptop", '
            '"iPhone of the CFO"), and any server can ask for them.',
            "set allow_device_name_lookup_over_federation: false, or a federation_domain_whitelist",
        )


def check_public_rooms_without_directory(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    if policy.allow_public_rooms_over_federation and not policy.enable_room_list_search:
        yield Finding(
            "public-rooms-without-directory",
            "warning",
            name,
            ("policy", "allow_public_rooms_over_federation"),
            "allow_public_rooms_over_federation is true, but enable_room_list_search is false",
            "Without room list search there is no directory at all, for anyone; other "
            "servers get an empty list.",
            "set enable_room_list_search: true, or allow_public_rooms_over_federation: false",
        )


def check_public_rooms_nothing_published(deployment: Deployment, name: str) -> Iterator[Finding]:
    policy = deployment.homeservers[name].policy
    rules = policy.room_list_publication_rules or []
    if policy.allow_public_rooms_over_federation and not any(r.action == "allow" for r in rules):
        yield Finding(
            "public-rooms-nothing-published",
            "warning",
            name,
            ("policy", "allow_public_rooms_over_federation"),
            f"{name}'s directory is open to other servers, but nobody may publish to it",
            "Without an `allow` rule in room_list_publication_rules, Synapse publishes "
            "nothing (rooms created as public silently stay unpublished), so other "
            "servers see an empty directory.",
            "add room_list_publication_rules, e.g. [{action: allow}], or set "
            "allow_public_rooms_over_federation: false",
        )


def check_loopback_siblings(deployment: Deployment, name: str) -> Iterator[Finding]:
    """Siblings on loopback: every other Synapse of the machine may then reach its loopback."""
    address = sibling_address(deployment, name)
    if len(deployment.homeservers) < 2 or address is None or not ip_address(address).is_loopback:
        return
    others = [other for other in deployment.homeservers if other != name]
    where = "the proxy listens" if deployment.proxy is not None else f"{name} listens"
    yield Finding(
        "loopback-siblings",
        "warning",
        name,
        ("proxy", "address") if deployment.proxy is not None else ("address",),
        f"{', '.join(others)} must be allowed to send requests to {address}, where {where}",
        "Synapse refuses loopback addresses for its outbound requests; to federate with "
        f"{name} on this machine, the others allow exactly {address} "
        "(ip_range_whitelist). That also lets their users point push gateways or "
        "identity-server lookups at any other service listening on that address "
        "(pushers only to /_matrix/push/v1/notify). Fine for one machine in development; "
        "in production reach siblings through their public addresses.",
        "listen on a public or private address of the machine behind a reverse proxy "
        "(the production layout), or keep other services off this loopback address",
        section=() if deployment.proxy is not None else None,
    )


def check_admin_api_exposed(deployment: Deployment, name: str) -> Iterator[Finding]:
    hs = deployment.homeservers[name]
    if ip_address(hs.address).is_loopback:
        return
    yield Finding(
        "admin-api-exposed",
        "warning",
        name,
        ("address",),
        f"{name} serves Synapse's admin API on {hs.address}, beside federation",
        "The TLS listener carries federation, the client API, /_synapse/admin and the "
        "Homeport module's /_homeport/v1 alike. Every admin call needs an admin's token, "
        "but on a public address the admin API is one stolen token away from the Internet.",
        "keep address: 127.0.0.1 behind a reverse proxy that does not forward "
        "/_synapse/admin and /_homeport/ (the production layout), or firewall them",
    )


# An allowed range this large, outside private networks, is "the Internet" for the rule.
OPEN_NETWORK_ADDRESSES = 2**16


def check_admin_open_through_proxy(deployment: Deployment, name: str) -> Iterator[Finding]:
    """The proxy's `admin_from` lets a large part of the Internet reach the admin API."""
    proxy = deployment.proxy
    if proxy is None or name != next(iter(deployment.homeservers)):
        return  # one finding for the deployment, under the first homeserver
    for index, text in enumerate(proxy.admin_from):
        network = ip_network(text)
        if network.is_private or network.num_addresses <= OPEN_NETWORK_ADDRESSES:
            continue
        yield Finding(
            "admin-open-through-proxy",
            "warning",
            name,
            ("admin_from", index),
            f"the proxy lets {text} reach /_synapse/admin, /_homeport/ and the admin website",
            "Every admin call still needs an admin's token, but from that range the admin "
            "API is one stolen token (or one Synapse bug) away from anyone there.",
            "list only the networks administrators work from (a VPN, the office), e.g. "
            "10.0.0.0/8 or 203.0.113.7/32",
            section=("proxy",),
        )


def check_server_name_undelegated(deployment: Deployment, name: str) -> Iterator[Finding]:
    """Other servers will look for this server where nothing of the deployment answers."""
    hs = deployment.homeservers[name]
    address = split_server_name(hs.server_name)
    if address.port is not None or address.is_ip_literal or deployment.proxy is not None:
        return
    if hs.port == 8448:
        return  # the default port: found without delegation
    yield Finding(
        "server-name-undelegated",
        "warning",
        name,
        ("server_name",),
        f"other servers will look for {hs.server_name} at "
        f"https://{address.host}/.well-known/matrix/server, then DNS SRV, then port 8448; "
        f"{name} listens on {hs.port} and nothing here serves that well-known",
        "A server name without a port needs delegation (a well-known on port 443 of its "
        "host, or an SRV record) unless the homeserver is on port 8448; without it "
        "federation fails both ways.",
        f"add `proxy:` (the nginx target serves the well-known on 443), serve "
        f'{{"m.server": "{address.host}:{hs.port}"}} there yourself, or write the port '
        f"in the server name ({address.host}:{hs.port})",
    )


def check_federation_bypasses_proxy(deployment: Deployment, name: str) -> Iterator[Finding]:
    """A server name with a port other than the proxy's sends federation around it."""
    hs = deployment.homeservers[name]
    proxy = deployment.proxy
    port = split_server_name(hs.server_name).port
    if proxy is None or port is None or port == proxy.port:
        return
    yield Finding(
        "federation-bypasses-proxy",
        "warning",
        name,
        ("server_name",),
        f"{hs.server_name} names port {port}, so other servers connect there, not to the "
        f"proxy on {proxy.port}",
        "A port in the server name skips delegation: federation goes straight to that "
        "port, where the proxy does not listen (and where the admin API must not be).",
        f"drop the port from the server name (the proxy delegates to "
        f"{hs.served_host}:{proxy.port}), or make it :{proxy.port}",
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


RETRIES: KeyPath = ("federation_retries",)
# Beyond these, an outage stays invisible or a recovered server waits too long.
HIDDEN_FAILURE_AFTER_S = 120.0
LATE_RECOVERY_AFTER_S = 900.0
# Below these, every dead server on the network is retried in a tight loop.
HAMMER_MIN_INTERVAL_S = 5.0
HAMMER_MAX_INTERVAL_S = 30.0


def check_retries_hide_outages(deployment: Deployment, name: str) -> Iterator[Finding]:
    retries = deployment.homeservers[name].federation_retries
    figures = promise(retries)
    if figures.failure_recorded_within > HIDDEN_FAILURE_AFTER_S:
        yield Finding(
            "retries-hide-outages",
            "warning",
            name,
            (*RETRIES, "max_long_retries"),
            f"{name} records a failed server only after up to "
            f"{spoken(figures.failure_recorded_within)} of retries",
            "Until Synapse records a failure, the destination shows no failed attempt and "
            "its events pile up silently (Synapse's defaults take 7 to 12 minutes).",
            "lower max_long_retries or max_long_retry_delay (Homeport's defaults: 3 and 10s)",
        )
    if figures.recovered_within > LATE_RECOVERY_AFTER_S:
        yield Finding(
            "retries-hide-outages",
            "warning",
            name,
            (*RETRIES, "destination_max_retry_interval"),
            f"a server that comes back may wait up to {spoken(figures.recovered_within)} "
            f"for the events {name} owes it",
            "Synapse retries a failing server only when its backoff is over; messages sent "
            "during an outage arrive that much later, unless someone resets the connection.",
            "lower destination_max_retry_interval (Homeport's default: 1m)",
        )


def check_retries_hammer_dead_servers(deployment: Deployment, name: str) -> Iterator[Finding]:
    retries = deployment.homeservers[name].federation_retries
    figures = promise(retries)
    if (
        figures.first_retry_after < HAMMER_MIN_INTERVAL_S
        or figures.longest_backoff < HAMMER_MAX_INTERVAL_S
    ):
        key = (
            "destination_min_retry_interval"
            if figures.first_retry_after < HAMMER_MIN_INTERVAL_S
            else "destination_max_retry_interval"
        )
        yield Finding(
            "retries-hammer-dead-servers",
            "warning",
            name,
            (*RETRIES, key),
            f"{name} retries a dead server every {spoken(figures.longest_backoff)} at most, "
            "for as long as it is dead",
            "Every server that shares a room and stops answering costs a transaction of "
            f"{retries.max_long_retries + 1} requests per round, forever; on the open "
            "federation many servers are gone for good.",
            f"keep destination_min_retry_interval >= {spoken(HAMMER_MIN_INTERVAL_S)} and "
            f"destination_max_retry_interval >= {spoken(HAMMER_MAX_INTERVAL_S)}",
        )


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
