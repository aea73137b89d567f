"""`homeport verify` against real homeservers: the starter, each setting flipped, drift, random.

Each flip changes one setting on one homeserver, applies it with
`homeport restart NAME` (the other keeps running), and shows that verify's
observed value flips, with zero mismatches before and after. A raw client
request in the test itself cross-checks what verify reports.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import secrets
import signal
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from homeport.config.deployment import Deployment
from homeport.store.database import open_store
from homeport.trust import client_ssl_context
from homeport.verify.report import latest_report
from tests.harness import (
    HOMEPORT,
    RunningDeployment,
    access_token,
    create_user,
    edit_yaml,
    free_port_run,
    homeport,
    init_deployment,
    run_sync,
)
from tests.policies import STARTER_VISIBILITY, random_policies

pytestmark = pytest.mark.e2e

SURFACES = {
    "federation",
    "public_rooms",
    "space_hierarchy",
    "profile",
    "device_names",
    "user_search",
    "join_nonfederated",
    "internal_spaces",
}


@dataclass
class PolicyDeployment:
    """A running pair whose policies tests change, restarting only what they touch."""

    running: RunningDeployment
    starter: dict[str, dict[str, Any]]
    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per homeserver, a local user in a public room, found by search since the
    # start whenever the directory is on: (user ID, a word of its name).
    anchors: dict[str, tuple[str, str]] = field(default_factory=dict)

    def verify(self) -> tuple[int, dict[str, Any]]:
        """`homeport verify` on the servers as they run now (never an earlier answer:
        a homeserver restarted into a policy it had before must prove it again)."""
        return verify(self.config)

    @property
    def config(self) -> Path:
        return self.running.config_path

    @property
    def deployment(self) -> Deployment:
        return self.running.deployment

    def set_policies(self, policies: dict[str, dict[str, Any]]) -> None:
        """Write every policy into the file first (lint judges the whole file), then
        restart each homeserver whose policy changed."""
        changed = [name for name, policy in policies.items() if self.current[name] != policy]
        if not changed:
            return

        def edit(data: Any) -> None:
            for name in changed:
                data["homeservers"][name]["policy"] = copy.deepcopy(policies[name])

        edit_yaml(self.config, edit)
        for name in changed:
            homeport("restart", "-c", str(self.config), name, timeout=240)
            self.current[name] = copy.deepcopy(policies[name])

    def set_policy(self, name: str, policy: dict[str, Any]) -> None:
        self.set_policies({name: policy})

    def with_changes(self, name: str, *changes: dict[str, Any]) -> None:
        """The starter policy of `name` with `changes` merged in (None removes a key)."""
        policy = copy.deepcopy(self.starter[name])
        for change in changes:
            _merge(policy, change)
        self.set_policy(name, policy)

    def reset(self) -> None:
        self.set_policies(copy.deepcopy(self.starter))


def _merge(base: dict[str, Any], change: dict[str, Any]) -> None:
    for key, value in change.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


@pytest.fixture(scope="module")
def policy_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyDeployment]:
    config = init_deployment(tmp_path_factory.mktemp("verify"))
    data = yaml.safe_load(config.read_text())
    starter = {name: hs["policy"] for name, hs in data["homeservers"].items()}
    running = RunningDeployment(config)
    running.start()
    try:
        pair = PolicyDeployment(running, starter, copy.deepcopy(starter))
        run_sync(_place_anchors(pair))
        yield pair
    finally:
        if running.process is not None:
            running.stop()
        running.kill_leftovers()


async def _place_anchors(pair: PolicyDeployment) -> None:
    raw = Raw(pair)
    for name in pair.deployment.homeservers:
        word = f"anchor{secrets.token_hex(4)}"
        anchor, token, _ = await raw.user(name, displayname=f"Anchor {word}")
        await raw.create_room(name, token, {"preset": "public_chat"})
        _, looker, _ = await raw.user(name)
        deadline = time.monotonic() + 60
        while anchor not in await _search(raw, name, looker, word):
            assert time.monotonic() < deadline, f"{name}'s user directory never listed {anchor}"
            await asyncio.sleep(0.2)
        pair.anchors[name] = (anchor, word)


def verify(config: Path) -> tuple[int, dict[str, Any]]:
    result = homeport("verify", "-c", str(config), "--json", check=False, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report


def observed(report: dict[str, Any], viewer: str, target: str, surface: str) -> str:
    (check,) = [
        c
        for c in report["checks"]
        if (c["viewer"], c["target"], c["surface"]) == (viewer, target, surface)
    ]
    return str(check["observed"])


def assert_no_mismatch(code: int, report: dict[str, Any]) -> None:
    bad = [c for c in report["checks"] if not c["ok"]]
    assert report["mismatches"] == 0, bad
    assert code == 0


# Raw client requests, written out in the test so they do not share verify's code.


class Raw:
    """Users and plain HTTP requests on the deployment's homeservers."""

    def __init__(self, pair: PolicyDeployment) -> None:
        self.pair = pair
        self.deployment = pair.deployment
        self.ssl: ssl.SSLContext = client_ssl_context(self.deployment)

    def url(self, name: str) -> str:
        return self.deployment.homeservers[name].base_url

    async def call(
        self, name: str, token: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        async with httpx.AsyncClient(verify=self.ssl, timeout=30) as http:
            return await http.request(
                method,
                f"{self.url(name)}{path}",
                headers={"Authorization": f"Bearer {token}"},
                **kwargs,
            )

    async def user(self, name: str, displayname: str | None = None) -> tuple[str, str, str]:
        """A fresh user with a named device: (user_id, token, device_id)."""
        user_id, token, device_id = await self.pair.running.new_session(
            name, device_name="Raw test laptop"
        )
        if displayname:
            put = await self.call(
                name,
                token,
                "PUT",
                f"/_matrix/client/v3/profile/{quote(user_id)}/displayname",
                json={"displayname": displayname},
            )
            put.raise_for_status()
        return user_id, token, device_id

    async def create_room(self, name: str, token: str, body: dict[str, Any]) -> str:
        response = await self.call(name, token, "POST", "/_matrix/client/v3/createRoom", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["room_id"])

    async def join(self, name: str, token: str, room_id: str, via: str) -> bool:
        response = await self.call(
            name,
            token,
            "POST",
            f"/_matrix/client/v3/join/{quote(room_id)}",
            params={"server_name": self.deployment.homeservers[via].server_name},
            json={},
        )
        if (response.status_code, _errcode(response)) == (502, "M_UNKNOWN"):
            # "Failed to make_join via any server": a refusal only when this server
            # does not federate with `via`; unreachable or backing off, it is an error.
            assert await self.federation_denied(name, token, via), (
                f"join from {name} via {via}: 502 while they federate: {response.text[:300]}"
            )
            return False
        return response.status_code == 200 or not _refused(response, "join")

    async def federation_denied(self, name: str, token: str, target: str) -> bool:
        """Whether homeserver `name` refuses to contact `target` (its whitelist says no)."""
        server = self.deployment.homeservers[target].server_name
        response = await self.call(
            name,
            token,
            "POST",
            "/_matrix/client/v3/keys/query",
            json={"device_keys": {f"@nobody:{server}": []}},
        )
        assert response.status_code == 200, response.text
        failure = response.json().get("failures", {}).get(server)
        return failure is not None and failure.get("status") == 403


RawCheck = Callable[[Raw], Awaitable[str]]

# What a refusal may look like, per raw check: anything else (a 500, a 429, a
# timeout) is an error of the test run, never a "hidden" or "refused".
REFUSALS: dict[str, set[tuple[int, str]]] = {
    "join": {(403, "M_FORBIDDEN"), (404, "M_NOT_FOUND")},  # 502: see `Raw.join`
    "profile": {(403, "M_FORBIDDEN"), (404, "M_NOT_FOUND")},
    "public_rooms": {(403, "M_FORBIDDEN")},
}


def _errcode(response: httpx.Response) -> str:
    try:
        return str(response.json().get("errcode"))
    except ValueError:
        return ""


def _refused(response: httpx.Response, what: str) -> bool:
    """True for an answer that says no; an unexpected error fails the test instead."""
    found = (response.status_code, _errcode(response))
    assert found in REFUSALS[what], f"{what}: unexpected {found}: {response.text[:300]}"
    return True


def raw_public_rooms(viewer: str, target: str) -> RawCheck:
    async def check(raw: Raw) -> str:
        word = f"raw{secrets.token_hex(4)}"
        _, owner, _ = await raw.user(target)
        room_id = await raw.create_room(
            target, owner, {"preset": "public_chat", "visibility": "public", "name": word}
        )
        _, looker, _ = await raw.user(viewer)
        response = await raw.call(
            viewer,
            looker,
            "POST",
            "/_matrix/client/v3/publicRooms",
            params={"server": raw.deployment.homeservers[target].server_name},
            json={"filter": {"generic_search_term": word}},
        )
        if response.status_code != 200 and _refused(response, "public_rooms"):
            return "hidden"
        listed = any(r["room_id"] == room_id for r in response.json()["chunk"])
        return "visible" if listed else "hidden"

    return check


def raw_profile(viewer: str, target: str) -> RawCheck:
    async def check(raw: Raw) -> str:
        name = f"Raw {secrets.token_hex(3)}"
        user_id, _, _ = await raw.user(target, displayname=name)
        _, looker, _ = await raw.user(viewer)
        response = await raw.call(
            viewer, looker, "GET", f"/_matrix/client/v3/profile/{quote(user_id)}"
        )
        if response.status_code != 200 and _refused(response, "profile"):
            return "hidden"
        return "visible" if response.json().get("displayname") == name else "hidden"

    return check


async def _keys_query(raw: Raw, viewer: str, target: str) -> tuple[str, str, dict[str, Any]]:
    user_id, token, device_id = await raw.user(target)
    keys = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {f"curve25519:{device_id}": "A" * 43, f"ed25519:{device_id}": "B" * 43},
        "signatures": {user_id: {f"ed25519:{device_id}": "C" * 86}},
    }
    upload = await raw.call(
        target, token, "POST", "/_matrix/client/v3/keys/upload", json={"device_keys": keys}
    )
    upload.raise_for_status()
    _, looker, _ = await raw.user(viewer)
    response = await raw.call(
        viewer,
        looker,
        "POST",
        "/_matrix/client/v3/keys/query",
        json={"device_keys": {user_id: []}},
    )
    response.raise_for_status()
    return user_id, device_id, response.json()


def raw_device_names(viewer: str, target: str) -> RawCheck:
    async def check(raw: Raw) -> str:
        user_id, device_id, body = await _keys_query(raw, viewer, target)
        device = body.get("device_keys", {}).get(user_id, {}).get(device_id, {})
        named = device.get("unsigned", {}).get("device_display_name") == "Raw test laptop"
        return "visible" if named else "hidden"

    return check


def raw_federation(viewer: str, target: str) -> RawCheck:
    async def check(raw: Raw) -> str:
        _, _, body = await _keys_query(raw, viewer, target)
        failure = body.get("failures", {}).get(raw.deployment.homeservers[target].server_name)
        return "allowed" if failure is None else "denied" if failure["status"] == 403 else "?"

    return check


async def _search(raw: Raw, name: str, token: str, term: str) -> list[str]:
    response = await raw.call(
        name, token, "POST", "/_matrix/client/v3/user_directory/search", json={"search_term": term}
    )
    response.raise_for_status()
    return [r["user_id"] for r in response.json()["results"]]


def raw_search_local_stranger(viewer: str) -> RawCheck:
    """search_all_users, seen locally: a user sharing no room with anyone is found or not."""

    async def check(raw: Raw) -> str:
        word = f"raw{secrets.token_hex(4)}"
        stranger, _, _ = await raw.user(viewer, displayname=f"Stranger {word}")
        _, looker, _ = await raw.user(viewer)
        return "visible" if stranger in await _search(raw, viewer, looker, word) else "hidden"

    return check


def raw_search_remote_in_public_room(viewer: str, target: str) -> RawCheck:
    """A remote user in a public room our server is in: found unless the directory says no."""

    async def check(raw: Raw) -> str:

        word = f"raw{secrets.token_hex(4)}"
        remote, remote_token, _ = await raw.user(target, displayname=f"Remote {word}")
        room_id = await raw.create_room(target, remote_token, {"preset": "public_chat"})
        _, member, _ = await raw.user(viewer)
        assert await raw.join(viewer, member, room_id, via=target)
        # Whether the remote is absent from search or only not yet indexed: the
        # members list waits for the room's full state (a join is partial at
        # first), then a local witness joins; the directory works through the
        # room's changes in order, so once it lists the witness it has seen the
        # remote's membership.
        members = await raw.call(
            viewer, member, "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/members"
        )
        assert members.status_code == 200, members.text
        witness, witness_token, _ = await raw.user(viewer, displayname=f"Witness {word}")
        assert await raw.join(viewer, witness_token, room_id, via=target)
        _, looker, _ = await raw.user(viewer)
        # With `user_directory.enabled: false` search finds nobody, ever: the
        # anchor, indexed when the deployment started, tells that case apart.
        anchor, anchor_word = raw.pair.anchors[viewer]
        if anchor not in await _search(raw, viewer, looker, anchor_word):
            return "hidden"
        deadline = time.monotonic() + 60
        while witness not in (found := await _search(raw, viewer, looker, word)):
            assert time.monotonic() < deadline, f"{viewer}'s user directory never listed {witness}"
            await asyncio.sleep(0.2)
        return "visible" if remote in found else "hidden"

    return check


def raw_join(viewer: str, target: str) -> RawCheck:
    """A room made by a plain client on the target, joined from the viewer."""

    async def check(raw: Raw) -> str:
        _, owner, _ = await raw.user(target)
        room_id = await raw.create_room(target, owner, {"preset": "public_chat"})
        _, joiner, _ = await raw.user(viewer)
        return "joined" if await raw.join(viewer, joiner, room_id, via=target) else "refused"

    return check


@dataclass(frozen=True)
class Flip:
    name: str
    homeserver: str
    change: dict[str, Any]
    viewer: str
    target: str
    surface: str
    before: str
    after: str
    raw: Callable[[str, str], RawCheck]
    base: dict[str, Any] = field(default_factory=dict)


def _viewer_only(check: Callable[[str], RawCheck]) -> Callable[[str, str], RawCheck]:
    return lambda viewer, _target: check(viewer)


SEARCH_ALL = {"user_directory": {"search_all_users": True}}

FLIPS = [
    Flip(
        "allow_public_rooms_over_federation",
        "external",
        {"allow_public_rooms_over_federation": False},
        "internal",
        "external",
        "public_rooms",
        "visible",
        "hidden",
        raw_public_rooms,
    ),
    Flip(
        "enable_room_list_search",
        "external",
        {"enable_room_list_search": False},
        "internal",
        "external",
        "public_rooms",
        "visible",
        "hidden",
        raw_public_rooms,
    ),
    Flip(
        "room_list_publication_rules",
        "external",
        {"room_list_publication_rules": None},
        "internal",
        "external",
        "public_rooms",
        "visible",
        "hidden",
        raw_public_rooms,
    ),
    Flip(
        "allow_profile_lookup_over_federation",
        "internal",
        {"allow_profile_lookup_over_federation": True},
        "external",
        "internal",
        "profile",
        "hidden",
        "visible",
        raw_profile,
    ),
    Flip(
        "limit_profile_requests_to_users_who_share_rooms",
        "internal",
        {
            "limit_profile_requests_to_users_who_share_rooms": True,
            "require_auth_for_profile_requests": True,
        },
        "internal",
        "external",
        "profile",
        "visible",
        "hidden",
        raw_profile,
    ),
    Flip(
        "allow_device_name_lookup_over_federation",
        "external",
        {"allow_device_name_lookup_over_federation": True},
        "internal",
        "external",
        "device_names",
        "hidden",
        "visible",
        raw_device_names,
    ),
    Flip(
        "federation_domain_whitelist",
        "internal",
        {"federation_domain_whitelist": ["internal"]},
        "external",
        "internal",
        "federation",
        "allowed",
        "denied",
        raw_federation,
    ),
    Flip(
        "user_directory.search_all_users",
        "internal",
        SEARCH_ALL,
        "internal",
        "external",
        "user_search",
        "hidden",
        "visible",
        _viewer_only(raw_search_local_stranger),
    ),
    Flip(
        "user_directory.enabled",
        "internal",
        {"user_directory": {"enabled": False}},
        "internal",
        "external",
        "user_search",
        "visible",
        "hidden",
        raw_search_remote_in_public_room,
        base=SEARCH_ALL,
    ),
    Flip(
        "user_directory.exclude_remote_users",
        "internal",
        {"user_directory": {"exclude_remote_users": True}},
        "internal",
        "external",
        "user_search",
        "visible",
        "hidden",
        raw_search_remote_in_public_room,
        base=SEARCH_ALL,
    ),
    Flip(
        "rooms.federation never",
        "external",
        {"rooms": {"federation": "never"}},
        "internal",
        "external",
        "space_hierarchy",
        "visible",
        "hidden",
        lambda viewer, target: _as_visibility(raw_join(viewer, target)),
    ),
    Flip(
        "rooms.federation creator_choice",
        "internal",
        {"rooms": {"federation": "creator_choice"}},
        "external",
        "internal",
        "space_hierarchy",
        "hidden",
        "visible",
        lambda viewer, target: _as_visibility(raw_join(viewer, target)),
    ),
]


def _as_visibility(check: RawCheck) -> RawCheck:
    """A public room of the target that the viewer can join is one it can browse."""

    async def visibility(raw: Raw) -> str:
        return "visible" if await check(raw) == "joined" else "hidden"

    return visibility


def test_starter_policy_verifies_with_zero_mismatches(policy_pair: PolicyDeployment) -> None:
    policy_pair.reset()
    code, report = policy_pair.verify()
    assert_no_mismatch(code, report)
    assert {c["surface"] for c in report["checks"]} == SURFACES
    assert len(report["checks"]) == 2 * len(SURFACES)
    for check in report["checks"]:
        assert set(check) == {"viewer", "target", "surface", "expected", "observed", "ok", "detail"}
    for (viewer, target), surfaces in STARTER_VISIBILITY.items():
        for surface, value in surfaces.items():
            assert observed(report, viewer, target, surface) == value, (viewer, target, surface)
    # The report is kept in Homeport's store, for the admin website.
    store = open_store(policy_pair.deployment)
    try:
        kept = latest_report(store)
    finally:
        store.dispose()
    assert kept is not None
    # Drift in internal spaces is said, not kept: the starter has none.
    assert report["drift"] == []
    assert kept.as_json() == {key: value for key, value in report.items() if key != "drift"}


def test_probes_are_cleaned_up(policy_pair: PolicyDeployment) -> None:
    """After verify no probe user is active: they are deactivated and erased."""
    policy_pair.reset()
    verify(policy_pair.config)
    assert_no_probes_left(policy_pair)


def assert_no_probes_left(policy_pair: PolicyDeployment) -> None:
    raw = Raw(policy_pair)

    async def leftovers(name: str) -> tuple[list[str], int]:
        """Active probe users, and named probe rooms not yet purged, on `name`."""
        admin_id, password = await policy_pair.running.new_user(name, admin=True)
        token, _ = await access_token(policy_pair.deployment, name, admin_id, password)
        users = await raw.call(
            name,
            token,
            "GET",
            "/_synapse/admin/v2/users",
            params={"name": "homeport-probe", "deactivated": "false", "limit": 100},
        )
        users.raise_for_status()
        deadline = time.monotonic() + 60
        while True:  # rooms are purged in the background
            rooms = await raw.call(
                name,
                token,
                "GET",
                "/_synapse/admin/v1/rooms",
                params={"search_term": "Homeport probe"},
            )
            rooms.raise_for_status()
            left = int(rooms.json()["total_rooms"])
            if left == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        return [u["name"] for u in users.json()["users"]], left

    for name in ("internal", "external"):
        assert run_sync(leftovers(name)) == ([], 0)


def test_an_interrupted_verify_leaves_nothing_behind(policy_pair: PolicyDeployment) -> None:
    """A killed verify's probes are swept by the next; SIGTERM removes a run's own."""
    policy_pair.reset()
    raw = Raw(policy_pair)
    deployment = policy_pair.deployment

    async def plant_leftover() -> tuple[str, str, str]:
        """What a verify killed with SIGKILL leaves: a probe user, its room, its override."""
        admin_id, password = await policy_pair.running.new_user("internal", admin=True)
        root, _ = await access_token(deployment, "internal", admin_id, password)
        probe_password = secrets.token_urlsafe(12)
        probe = await create_user(
            deployment, "internal", "homeport-probe-dead0000-host", probe_password, False
        )
        answer = await raw.call(
            "internal", root, "POST",
            f"/_synapse/admin/v1/users/{quote(probe)}/override_ratelimit",
            json={"messages_per_second": 0, "burst_count": 0},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        token, _ = await access_token(deployment, "internal", probe, probe_password)
        room = await raw.call(
            "internal", token, "POST", "/_matrix/client/v3/createRoom",
            json={"name": "Homeport probe room (left over)"},
        )  # fmt: skip
        assert room.status_code == 200, room.text
        return root, probe, str(room.json()["room_id"])

    root, probe, room_id = run_sync(plant_leftover())

    async def probes_of_this_run() -> bool:
        users = await raw.call(
            "internal", root, "GET", "/_synapse/admin/v2/users",
            params={"name": "homeport-probe", "deactivated": "false", "limit": 100},
        )  # fmt: skip
        names = [u["name"] for u in users.json()["users"]]
        return any("dead0000" not in name for name in names)

    process = subprocess.Popen(
        [*HOMEPORT, "verify", "-c", str(policy_pair.config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not run_sync(probes_of_this_run()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "verify made no probe users"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "verify was interrupted; its probe users and rooms are removed" in stderr

    async def override_of(user_id: str) -> dict[str, Any]:
        answer = await raw.call(
            "internal", root, "GET", f"/_synapse/admin/v1/users/{quote(user_id)}/override_ratelimit"
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    # The planted leftover went at the start of the run: override, room, user.
    assert run_sync(override_of(probe)) == {}
    room = run_sync(raw.call("internal", root, "GET", f"/_synapse/admin/v1/rooms/{quote(room_id)}"))
    assert room.status_code == 404 or room.json().get("joined_members") == 0
    # And the interrupted run removed its own.
    assert_no_probes_left(policy_pair)


# The flips take most of this module's time: all but the first HALF run in
# test_verify_flips.py, on a deployment of its own, in parallel (this module
# has its other tests besides).
FLIP_BY_NAME = {flip.name: flip for flip in FLIPS}
# Flips that restart, verify and probe together: within a batch, no change can
# touch another flip's surface (the whitelist, which touches every surface, is
# alone), so each flip still proves its own setting, in a fifth of the restarts.
BATCHES: list[tuple[str, ...]] = [
    (
        "allow_public_rooms_over_federation",
        "allow_profile_lookup_over_federation",
        "user_directory.search_all_users",
    ),
    (
        "enable_room_list_search",
        "limit_profile_requests_to_users_who_share_rooms",
        "user_directory.enabled",
    ),
    (
        "room_list_publication_rules",
        "user_directory.exclude_remote_users",
        "rooms.federation creator_choice",
    ),
    ("rooms.federation never", "allow_device_name_lookup_over_federation"),
    ("federation_domain_whitelist",),
]
HALF = 2  # the first batches here, the others in test_verify_flips.py


def _batch_ids(batches: list[tuple[str, ...]]) -> list[str]:
    return [" + ".join(batch) for batch in batches]


@pytest.mark.parametrize("batch", BATCHES[:HALF], ids=_batch_ids(BATCHES[:HALF]))
def test_each_setting_flips_what_verify_observes(
    policy_pair: PolicyDeployment, batch: tuple[str, ...]
) -> None:
    check_flips(policy_pair, [FLIP_BY_NAME[name] for name in batch])


def check_flips(policy_pair: PolicyDeployment, flips: list[Flip]) -> None:
    """Before the changes verify and a raw request see each flip's `before`, after
    them its `after`; only the touched homeservers restart; no mismatch either time."""
    surfaces = [(f.viewer, f.target, f.surface) for f in flips]
    assert len(set(surfaces)) == len(surfaces), "two flips of a batch share a surface"
    before = copy.deepcopy(policy_pair.starter)
    for flip in flips:
        _merge(before[flip.homeserver], flip.base)
    policy_pair.set_policies(before)
    raw = Raw(policy_pair)

    code, report = policy_pair.verify()
    assert_no_mismatch(code, report)
    for flip in flips:
        seen = observed(report, flip.viewer, flip.target, flip.surface)
        assert seen == flip.before, (flip.name, "verify before", seen)
        seen = run_sync(flip.raw(flip.viewer, flip.target)(raw))
        assert seen == flip.before, (flip.name, "raw before", seen)

    untouched = [n for n in policy_pair.starter if n not in {f.homeserver for f in flips}]
    pids = {name: _pid(policy_pair, name) for name in untouched}
    after = copy.deepcopy(before)
    for flip in flips:
        _merge(after[flip.homeserver], flip.change)
    policy_pair.set_policies(after)
    assert {name: _pid(policy_pair, name) for name in untouched} == pids, (
        "only the touched homeservers restart"
    )

    code, report = policy_pair.verify()
    assert_no_mismatch(code, report)
    for flip in flips:
        seen = observed(report, flip.viewer, flip.target, flip.surface)
        assert seen == flip.after, (flip.name, "verify after", seen)
        seen = run_sync(flip.raw(flip.viewer, flip.target)(raw))
        assert seen == flip.after, (flip.name, "raw after", seen)


def test_every_flip_is_in_one_batch() -> None:
    named = [name for batch in BATCHES for name in batch]
    assert sorted(named) == sorted(FLIP_BY_NAME)


def _pid(pair: PolicyDeployment, name: str) -> int:
    status = json.loads(homeport("status", "-c", str(pair.config), "--json").stdout)
    return int(status["homeservers"][name]["pid"])


def test_drift_from_the_policy_is_a_mismatch(policy_pair: PolicyDeployment) -> None:
    """Someone edits a rendered Synapse config by hand: verify catches it, exit 1."""
    policy_pair.reset()
    rendered = policy_pair.running.layout.homeserver("external").config_file
    text = rendered.read_text()
    assert "allow_public_rooms_over_federation: true" in text
    rendered.write_text(
        text.replace(
            "allow_public_rooms_over_federation: true", "allow_public_rooms_over_federation: false"
        )
    )
    homeport("stop", "-c", str(policy_pair.config), "external")
    homeport("start", "-c", str(policy_pair.config), "external", timeout=240)
    try:
        code, report = verify(policy_pair.config)
        assert code == 1
        bad = [c for c in report["checks"] if not c["ok"]]
        assert report["mismatches"] == len(bad) == 1
        assert bad[0]["viewer"] == "internal"
        assert bad[0]["surface"] == "public_rooms"
        assert (bad[0]["expected"], bad[0]["observed"]) == ("visible", "hidden")
        table = homeport("verify", "-c", str(policy_pair.config), check=False)
        assert table.returncode == 1
        assert "expected visible" in table.stdout
    finally:
        # `restart` renders from homeport.yaml again: the drift is gone.
        homeport("restart", "-c", str(policy_pair.config), "external", timeout=240)
    code, report = verify(policy_pair.config)
    assert_no_mismatch(code, report)


@pytest.mark.parametrize("seed", [11, 23, 37])
def test_random_policies_verify_with_zero_mismatches(
    policy_pair: PolicyDeployment, seed: int
) -> None:
    policies = random_policies(random.Random(seed), policy_pair.config.read_text())
    policy_pair.set_policies(policies)
    code, report = verify(policy_pair.config)
    assert_no_mismatch(code, report)


def test_restart_refuses_a_new_port_and_verify_warns_about_unapplied_edits(
    policy_pair: PolicyDeployment,
) -> None:
    policy_pair.reset()
    config = policy_pair.config
    original = config.read_text()
    pid = _pid(policy_pair, "external")
    try:

        def new_port(data: Any) -> None:
            external = data["homeservers"]["external"]
            old = external["port"]
            external["port"] = old + 10
            external["server_name"] = external["server_name"].replace(str(old), str(old + 10))

        edit_yaml(config, new_port)
        refused = homeport("restart", "-c", str(config), "external", check=False)
        assert refused.returncode == 1
        assert "listeners" in refused.stderr
        assert "homeport up" in refused.stderr
        assert _pid(policy_pair, "external") == pid, "nothing was restarted"

        # Each part of a homeserver's identity needs a new `up`, never a restart.
        edits: list[tuple[str, dict[str, str], str]] = [
            ("database", {"database": "postgresql://x@127.0.0.1/other"}, "database"),
            (
                "public_baseurl",
                {"public_baseurl": "https://elsewhere.example.org/"},
                "public_baseurl",
            ),
            ("address", {"address": "127.0.0.2"}, "listeners"),
            # The audit bot is a service of `up`, on a port `up` bound.
            ("audit bot", {"audit": {"port": free_port_run(1)}}, "audit bot"),
        ]
        for what, change, named in edits:
            config.write_text(original)
            edit_yaml(
                config, lambda data, change=change: data["homeservers"]["external"].update(change)
            )
            refused = homeport("restart", "-c", str(config), "external", check=False)
            assert refused.returncode == 1, what
            assert named in refused.stderr, (what, refused.stderr)
            assert _pid(policy_pair, "external") == pid, f"restarted for a new {what}"

        config.write_text(original)
        edit_yaml(
            config,
            lambda data: data["homeservers"]["external"]["policy"].update(
                {"allow_device_name_lookup_over_federation": True}
            ),
        )
        result = homeport("verify", "-c", str(config), "--json", check=False, timeout=120)
        assert "external runs an older configuration" in result.stderr
        report = json.loads(result.stdout)
        # The expectation follows the file, the observation the running server.
        check = next(
            c
            for c in report["checks"]
            if (c["viewer"], c["target"], c["surface"]) == ("internal", "external", "device_names")
        )
        assert (check["expected"], check["observed"]) == ("visible", "hidden")
        assert result.returncode == 1
    finally:
        config.write_text(original)
