"""The proxy's routing for workers, against the endpoints the installed Synapse registers.

Synapse's own `generate_workers_map` enumerates every endpoint of the main
process and of a generic worker (tests/homeserver/workers_map.py runs it). For
each endpoint a concrete path is made from its pattern; then:

- nothing is sent to a worker that the worker does not register (for that
  method): a request routed there would be a 404 or a 405;
- every endpoint class Synapse's documentation assigns to workers reaches
  one (sync, event sending, inbound federation, keys, login, media...);
- what stays on the main process although a worker could serve it is
  listed here with the reason, so a new Synapse that adds worker endpoints
  shows up as a failing count, not silently.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from homeport.homeserver.routing import route, routes
from tests.harness import homeport, init_deployment

try:  # the parser of the re module, by its 3.11 name
    import re._parser as sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore[no-redef]

MAP = Path(__file__).parent / "workers_map.py"


def sample(pattern: str) -> str:
    """A concrete path the pattern matches: first alternatives, 'x' for any segment text."""

    def walk(parsed: Any) -> str:
        out = []
        for op, arg in parsed:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "NOT_LITERAL" or name == "ANY":
                out.append("x")
            elif name == "IN":
                kinds = [str(k) for k, _ in arg]
                if "NEGATE" in kinds:
                    out.append("x")
                else:
                    kind, value = arg[0]
                    if str(kind) == "LITERAL":
                        out.append(chr(value))
                    elif str(kind) == "RANGE":
                        out.append(chr(value[0]))
                    else:  # a category: \w, \d
                        out.append("0" if "DIGIT" in str(value) else "x")
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                low, _high, item = arg
                out.append(walk(item) * max(low, 1))
            elif name == "SUBPATTERN":
                out.append(walk(arg[-1]))
            elif name == "BRANCH":
                out.append(walk(arg[1][0]))
            elif name == "AT":
                continue
            else:
                raise AssertionError(f"cannot sample {name} in {pattern}")
        return "".join(out)

    path = walk(sre_parse.parse(pattern))
    assert re.search(pattern, path), (pattern, path)
    return path


# Worker endpoints the documentation does not assign to generic workers: they stay
# on the main process, which serves everything. Path fragment -> why.
LEFT_ON_MAIN = {
    # Pagination: every request of a room must reach one process (workers.md).
    "/messages": "pagination",
    "/events/": "not in the documentation's table",
    # Streams whose writer is the main process: a worker would forward them to it.
    "/typing/": "typing stream writer",
    "/sendToDevice/": "to-device stream writer",
    "/account_data": "account-data stream writer",
    "/tags/": "account-data stream writer",
    "/read_markers": "receipts stream writer",
    "/receipt/": "receipts stream writer",
    "/presence/x/status": "presence stream writer",
    # Federation endpoints outside the table; openid/userinfo is what the conference
    # service asks, and stays with the main process's listener.
    "/openid/userinfo": "outside the table",
    "/user/keys/": "outside the table",
    "/3pid/onbind": "outside the table",
    "/complexity": "unstable, outside the table",
    # Client endpoints outside the table: unstable or transaction-id variants.
    "simplified_msc3575/sync": "unstable sliding sync",
    "/appservice/x/ping": "outside the table",
    "/delayed_events/x": "unstable, outside the table",
    "summary/rooms/x/summary": "unstable, outside the table",
    "/createRoom/x": "transaction-id variant, outside the table",
    "/join/x": "transaction-id variant, outside the table",
}


def registered_endpoints(homeserver_yaml: Path) -> dict[str, list[list[str]]]:
    """What Synapse's `generate_workers_map` enumerates for this configuration (its own
    process: Synapse's registration is global state): {"main"|"worker"|"media_admin":
    [[method, pattern], ...]}."""
    result = subprocess.run(
        [sys.executable, str(MAP), str(homeserver_yaml)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data: dict[str, list[list[str]]] = json.loads(result.stdout)
    return data


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str]]]:
    directory = tmp_path_factory.mktemp("routing")
    config = init_deployment(directory)
    homeport("render", "-c", str(config))
    data = registered_endpoints(directory / "data" / "homeservers" / "internal" / "homeserver.yaml")
    return {key: [tuple(pair) for pair in value] for key, value in data.items()}


def _serves(registrations: list[tuple[str, str]], method: str, path: str) -> bool:
    return any(m in (method, "*") and re.search(p, path) for m, p in registrations)


def test_no_request_is_sent_to_a_worker_that_cannot_serve_it(
    endpoints: dict[str, list[tuple[str, str]]],
) -> None:
    table = routes(generic=True, media=True)
    wrong = []
    for method, pattern in endpoints["main"]:
        path = sample(pattern)
        target = route(table, method, path)
        if target == "generic" and not _serves(endpoints["worker"], method, path):
            wrong.append((method, path, "generic"))
        if target == "media":
            media = _serves(endpoints["media_admin"], method, path) or _serves(
                [(m, p) for m, p in endpoints["worker"] if "/media/" in p], method, path
            )
            if not media:
                wrong.append((method, path, "media"))
    assert wrong == []


def test_every_documented_class_reaches_a_worker(
    endpoints: dict[str, list[tuple[str, str]]],
) -> None:
    table = routes(generic=True, media=True)
    for method, path, target in [
        ("GET", "/_matrix/client/v3/sync", "generic"),
        ("PUT", "/_matrix/client/v3/rooms/!r:x/send/m.room.message/1", "generic"),
        ("PUT", "/_matrix/federation/v1/send/123", "generic"),
        ("POST", "/_matrix/client/v3/keys/query", "generic"),
        ("POST", "/_matrix/client/v3/login", "generic"),
        ("GET", "/_matrix/client/v3/pushrules/", "generic"),
        ("PUT", "/_matrix/client/v3/pushrules/global/override/x", "main"),  # GET only
        ("GET", "/_matrix/client/v1/media/download/x/y", "media"),
        ("POST", "/_matrix/media/v3/upload", "media"),
        ("GET", "/_matrix/federation/v1/media/download/y", "media"),
        ("GET", "/_synapse/admin/v1/media/x/y", "media"),
        ("GET", "/_synapse/admin/v1/registration_tokens", "main"),
        ("GET", "/_matrix/client/v3/rooms/!r:x/messages", "main"),
    ]:
        assert route(table, method, path) == target, (method, path)
    # Without media workers media stays on the main process; without generic ones, all.
    assert route(routes(generic=True, media=False), "POST", "/_matrix/media/v3/upload") == "main"
    assert route(routes(generic=False, media=False), "GET", "/_matrix/client/v3/sync") == "main"
    # Every worker endpoint reaches a worker, or is one of the few left on main on purpose.
    left = sorted(
        {
            (method, sample(pattern))
            for method, pattern in endpoints["worker"]
            if route(table, method if method != "*" else "GET", sample(pattern)) == "main"
        }
    )
    unexplained = [
        (method, path)
        for method, path in left
        if not any(reason in path for reason in LEFT_ON_MAIN)
    ]
    assert len(left) - len(unexplained) >= 1
    # ...and each reason is still needed: a fragment nothing matches any more is stale.
    used = {reason for reason in LEFT_ON_MAIN for _, path in left if reason in path}
    assert used == set(LEFT_ON_MAIN), set(LEFT_ON_MAIN) - used
    assert unexplained == [], "\n".join(f"{m} {p}" for m, p in unexplained)
