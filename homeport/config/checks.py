"""Checks across sections that no single field can make: names, ports, passthrough keys."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

from homeport.config.deployment import Deployment
from homeport.config.federation import RETRY_KEYS
from homeport.config.groupsync import SpaceMapping
from homeport.config.homeserver import RESERVED_SYNAPSE_KEYS, Homeserver
from homeport.config.lines import KeyPath, LineMap, problem_at
from homeport.config.policy import internal_space
from homeport.config.types import check_server_name
from homeport.errors import ConfigProblem

# (problem path, message, hint): located and rendered by `cross_section_problems`.
Found = tuple[KeyPath, str, str]


def _addresses_overlap(a: str, b: str) -> bool:
    """Two listeners clash if they bind the same address or either binds all of them."""
    return a == b or ip_address(a).is_unspecified or ip_address(b).is_unspecified


class _Listeners:
    """The (address, port) pairs claimed so far, by whom."""

    def __init__(self) -> None:
        self._claimed: dict[tuple[str, int], str] = {}

    def claim(self, address: str, port: int, who: str) -> str | None:
        """Record the claim; return who already listens there, if anyone."""
        clash = next(
            (
                owner
                for (other_address, other_port), owner in self._claimed.items()
                if other_port == port and _addresses_overlap(other_address, address)
            ),
            None,
        )
        self._claimed.setdefault((address, port), who)
        return clash


def _worker_problems(
    model: Deployment, name: str, hs: Homeserver, listeners: _Listeners
) -> Iterator[Found]:
    """Workers share one PostgreSQL database and replicate over Redis; their ports are theirs."""
    workers = hs.workers
    if workers.count == 0:
        return
    key: KeyPath = ("homeservers", name, "workers")
    if hs.database == "sqlite":
        yield (
            key,
            f"{name} runs on SQLite, and Synapse's workers share one PostgreSQL database "
            "(SQLite takes one process only)",
            "put the homeserver on PostgreSQL first (`database: postgresql://...`; an "
            "existing SQLite database moves with Synapse's synapse_port_db), or drop `workers:`",
        )
    if model.redis is None:
        yield (
            key,
            "Synapse's workers replicate over Redis, and this file names none",
            "add `redis: {url: redis://127.0.0.1:6379}` at the top level",
        )
    if workers.port_base is None:
        yield (
            (*key, "port_base"),
            "workers need ports of their own",
            f"set port_base: the main process's replication listener and the next "
            f"{workers.count} ports on 127.0.0.1 are theirs",
        )
        return
    if (workers.generic or workers.media) and model.proxy is None:
        yield (
            key,
            "generic and media workers take their requests from the proxy, and this file "
            "has no `proxy:`",
            "add a `proxy:` section (`up` runs nginx in front of the processes)",
        )
    ports = [("the replication listener", workers.port_base)]
    ports += [(f"worker {spec.name}", spec.port) for spec in workers.specs()]
    for what, port in ports:
        if port > 65535:
            yield ((*key, "port_base"), f"{what} would get port {port}", "lower port_base")
            return
        clash = listeners.claim("127.0.0.1", port, f"the {what} of {name}")
        if clash is not None:
            yield (
                (*key, "port_base"),
                f"port {port} ({what}) is already used by {_who(clash)}",
                f"move port_base: {name}'s workers use {workers.port_base}-"
                f"{workers.port_base + workers.count}",
            )


def _who(owner: str) -> str:
    """A listener's owner in words: homeservers are named by their key."""
    return owner if owner.startswith("the ") else f"homeserver {owner!r}"


def _homeserver_problems(
    model: Deployment, name: str, hs: Homeserver, listeners: _Listeners, names: dict[str, str]
) -> Iterator[Found]:
    base: KeyPath = ("homeservers", name)
    if hs.server_name in names:
        yield (
            (*base, "server_name"),
            f"server name {hs.server_name!r} is already used by homeserver "
            f"{names[hs.server_name]!r}",
            "every homeserver needs its own server name",
        )
    names.setdefault(hs.server_name, name)
    clash = listeners.claim(hs.address, hs.port, name)
    if clash is not None:
        yield (
            (*base, "port"),
            f"port {hs.port} is already used by {_who(clash)}",
            "give each homeserver its own port",
        )
    yield from _worker_problems(model, name, hs, listeners)
    if hs.federation_port != hs.port and hs.public_baseurl is None:
        yield (
            (*base, "port"),
            f"other servers will connect to port {hs.federation_port} (from server name "
            f"{hs.server_name!r}) but this homeserver listens on {hs.port}",
            f"set port: {hs.federation_port}, or put port {hs.port} in the server name",
        )
    for index, entry in enumerate(hs.policy.federation_domain_whitelist or []):
        if entry in model.homeservers or entry.startswith("@") or "*" in entry:
            continue  # user IDs and patterns: `homeport lint` explains what to do instead
        try:
            check_server_name(entry)
        except ValueError as error:
            yield (
                (*base, "policy", "federation_domain_whitelist", index),
                f"{entry!r} is neither a homeserver of this file nor a server name ({error})",
                f"use a server name such as matrix.example.org:8448, or one of: "
                f"{', '.join(model.homeservers)}",
            )
    yield from _internal_space_problems(hs, base)
    if hs.audit_bot is not None:
        clash = listeners.claim("127.0.0.1", hs.audit_bot.port, f"the audit bot of {name!r}")
        if clash is not None:
            yield (
                (*base, "audit", "port"),
                f"port {hs.audit_bot.port} is already used by {_who(clash)}",
                "give the audit bot a port of its own",
            )
    for key in hs.synapse:
        if key in RESERVED_SYNAPSE_KEYS:
            yield (
                (*base, "synapse", key),
                f"Synapse setting {key!r} is managed by Homeport",
                RESERVED_SYNAPSE_KEYS[key],
            )
    federation = hs.synapse.get("federation")
    for key in federation if isinstance(federation, dict) else ():
        if key in RETRY_KEYS:
            yield (
                (*base, "synapse", "federation", key),
                f"Synapse setting federation.{key!r} is managed by Homeport",
                f"set `federation_retries.{key}` on the homeserver, so that lint and "
                "the Federation tab know it",
            )


def _internal_space_problems(hs: Homeserver, base: KeyPath) -> Iterator[Found]:
    """Internal spaces must be this homeserver's own: its module is what enforces them."""
    seen: set[str] = set()
    for index, reference in enumerate(hs.policy.rooms.internal_spaces):
        key = (*base, "policy", "rooms", "internal_spaces", index)
        full = internal_space(reference, hs.server_name)
        if full in seen:
            yield (key, f"{reference!r} is listed twice", "name each internal space once")
        seen.add(full)
        server = reference.partition(":")[2]
        if server and server != hs.server_name:
            yield (
                key,
                f"{reference!r} is a space of {server}, not of this homeserver ({hs.server_name})",
                "name spaces created here: the Homeport module of each homeserver guards "
                "its own spaces (list the other one under that homeserver, if it is one)",
            )


def _found(model: Deployment) -> Iterator[Found]:
    listeners = _Listeners()
    names: dict[str, str] = {}
    for name, hs in model.homeservers.items():
        yield from _homeserver_problems(model, name, hs, listeners, names)
    if model.admin is not None:
        clash = listeners.claim(model.admin.address, model.admin.port, "the admin website")
        if clash is not None:
            yield (
                ("admin", "port"),
                f"port {model.admin.port} is already used by {_who(clash)}",
                "give the admin website a port of its own",
            )
    if model.group_sync is not None:
        clash = listeners.claim("127.0.0.1", model.group_sync.port, "the group sync service")
        if clash is not None:
            yield (
                ("group_sync", "port"),
                f"port {model.group_sync.port} is already used by {_who(clash)}",
                "give group sync a port of its own",
            )
    if model.conference is not None:
        conference = model.conference
        clash = listeners.claim(conference.address, conference.port, "the conference service")
        if clash is not None:
            yield (
                ("conference", "port"),
                f"port {conference.port} is already used by {_who(clash)}",
                "give the conference service a port of its own",
            )
        own = {hs.server_name for hs in model.homeservers.values()}
        for index, server in enumerate(conference.allow_homeservers):
            if server in own:
                yield (
                    ("conference", "allow_homeservers", index),
                    f"{server!r} is a homeserver of this file, and those are always allowed",
                    "list only other servers here",
                )
    yield from _alerts_problems(model, listeners)
    yield from _proxy_problems(model, listeners)
    yield from _group_sync_problems(model)


def _alerts_problems(model: Deployment, listeners: _Listeners) -> Iterator[Found]:
    """The alerts service's port is its own; `important` names homeservers of the file and
    servers outside it."""
    alerts = model.alerts
    if alerts is None:
        return
    clash = listeners.claim("127.0.0.1", alerts.port, "the alerts service")
    if clash is not None:
        yield (
            ("alerts", "port"),
            f"port {alerts.port} is already used by {_who(clash)}",
            "give the alerts service a port of its own",
        )
    own = {hs.server_name for hs in model.homeservers.values()}
    for name, servers in alerts.important.items():
        if name not in model.homeservers:
            yield (
                ("alerts", "important", name),
                f"{name!r} is not a homeserver of this file",
                f"use one of: {', '.join(model.homeservers)}",
            )
            continue
        for index, server in enumerate(servers):
            if server in own:
                yield (
                    ("alerts", "important", name, index),
                    f"{server!r} is a homeserver of this file, and those are always watched",
                    "list only servers outside this file here",
                )


def _proxy_problems(model: Deployment, listeners: _Listeners) -> Iterator[Found]:
    """The proxy's port is its own, and each host name it serves is served once."""
    proxy = model.proxy
    if proxy is None:
        return
    clash = listeners.claim(proxy.address or "0.0.0.0", proxy.port, "the proxy")  # noqa: S104
    if clash is not None:
        yield (
            ("proxy", "port"),
            f"port {proxy.port} is already used by {_who(clash)}",
            "behind the proxy, give the homeservers and services private ports "
            "(e.g. 8008 on 127.0.0.1); only the proxy listens on 443",
        )
    yield from _served_once(model, "the proxy")


def _served_once(model: Deployment, front: str) -> Iterator[Found]:
    """Each host name the proxy (or a cluster's Ingress) serves, it serves for one only."""
    served: dict[str, str] = {}
    hosts: list[tuple[KeyPath, str, str]] = []
    for name, hs in model.homeservers.items():
        key: KeyPath = ("homeservers", name, "public_host" if hs.public_host else "server_name")
        hosts.append((key, hs.served_host, f"homeserver {name!r}"))
        if hs.served_host != hs.tls_name:
            hosts.append(
                (("homeservers", name, "server_name"), hs.tls_name, f"homeserver {name!r}")
            )
    if model.admin is not None:
        hosts.append((("admin", "host"), model.admin.host, "the admin website"))
    if model.conference is not None:
        hosts.append((("conference", "host"), model.conference.host, "the conference service"))
    for key, host, who in hosts:
        owner = served.setdefault(host, who)
        if owner != who:
            yield (
                key,
                f"{front} serves {host} for {owner} already",
                f"behind {front} every homeserver and service needs a host name of its own "
                "(set `public_host` or `host`)",
            )


def _group_sync_problems(model: Deployment) -> Iterator[Found]:
    sync = model.group_sync
    if sync is None:
        return
    if sync.homeserver not in model.homeservers:
        yield (
            ("group_sync", "homeserver"),
            f"{sync.homeserver!r} is not a homeserver of this file",
            f"use one of: {', '.join(model.homeservers)}",
        )
    seen: dict[str, str] = {}

    def claim(alias: str, what: str) -> str | None:
        owner = seen.get(alias)
        seen.setdefault(alias, what)
        return owner

    def walk(spaces: list[SpaceMapping], path: KeyPath) -> Iterator[Found]:
        for index, space in enumerate(spaces):
            here = (*path, index)
            owner = claim(space.alias, f"space {space.alias!r}")
            if owner is not None:
                yield (
                    (*here, "alias"),
                    f"alias {space.alias!r} is already used by {owner}",
                    "give every space and room its own alias",
                )
            for room_index, room in enumerate(space.rooms):
                owner = claim(room, f"a room of space {space.alias!r}")
                if owner is not None and owner != f"a room of space {space.alias!r}":
                    yield (
                        (*here, "rooms", room_index),
                        f"alias {room!r} is already used by {owner}",
                        "a room belongs to one space; give it its own alias",
                    )
            yield from walk(space.subspaces, (*here, "subspaces"))

    yield from walk(sync.spaces, ("group_sync", "spaces"))


def ingress_problems(model: Deployment, source: Path, lines: LineMap) -> list[ConfigProblem]:
    """What the Kubernetes rendering needs besides: the Ingress picks by host name too."""
    return [
        problem_at(source, lines, path, message, hint)
        for path, message, hint in _served_once(model, "the cluster's Ingress")
    ]


def cross_section_problems(model: Deployment, source: Path, lines: LineMap) -> list[ConfigProblem]:
    return [problem_at(source, lines, path, message, hint) for path, message, hint in _found(model)]
