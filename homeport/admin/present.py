"""How the admin website words Synapse's numbers: statuses, times, policy sentences. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from homeport.config.deployment import Deployment
from homeport.policy.effective import effective_whitelist

DestinationStatus = Literal["Working", "Failing", "Never worked", "Inactive"]


def destination_status(row: dict[str, Any]) -> DestinationStatus:
    """One word for a row of Synapse's federation destinations admin API.

    Failing: Synapse is backing off (retry_interval > 0). Never worked: no
    transaction with events ever succeeded. Working: no failure recorded.
    Inactive: a failure is recorded but Synapse is not backing off (it will
    try again with the next event).
    """
    if (row.get("retry_interval") or 0) > 0:
        return "Failing"
    if row.get("last_successful_stream_ordering") is None:
        return "Never worked"
    if row.get("failure_ts") is None and not row.get("retry_last_ts"):
        return "Working"
    return "Inactive"


def next_attempt_ms(row: dict[str, Any]) -> int | None:
    """retry_last_ts + retry_interval, when Synapse is backing off."""
    last, interval = row.get("retry_last_ts") or 0, row.get("retry_interval") or 0
    return last + interval if last and interval else None


def can_reset(row: dict[str, Any]) -> bool:
    """Synapse accepts reset_connection only while it has retry timings to clear."""
    return bool(row.get("retry_last_ts"))


@dataclass(frozen=True)
class When:
    """A moment shown as absolute time with zone and as relative words."""

    iso: str
    absolute: str
    relative: str


def relative(delta_seconds: float) -> str:
    """'in 8 min', '3 h ago', 'just now'."""
    future = delta_seconds > 0
    seconds = abs(delta_seconds)
    if seconds < 45:
        return "in a few seconds" if future else "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * 0.9 or unit == "min":
            amount = max(1, round(seconds / size))
            return f"in {amount} {unit}" if future else f"{amount} {unit} ago"
    raise AssertionError("unreachable")


def when(ms: int | None, now_ms: int, zone: tzinfo = UTC) -> When | None:
    if not ms:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=zone)
    return When(
        iso=moment.isoformat(timespec="seconds"),
        absolute=moment.strftime("%Y-%m-%d %H:%M:%S %Z"),
        relative=relative((ms - now_ms) / 1000),
    )


def server_of(user_id: str | None) -> str:
    """The server part of a user ID (the creator of a room); '' if unknown."""
    if not user_id or ":" not in user_id:
        return ""
    return user_id.split(":", 1)[1]


def policy_sentences(deployment: Deployment, name: str) -> list[tuple[bool, str]]:
    """The effective visibility of homeserver `name` in words: (shares something, sentence)."""
    hs = deployment.homeservers[name]
    policy = hs.policy
    whitelist = effective_whitelist(deployment, name)
    others = [s for s in whitelist or [] if s != hs.server_name]
    if whitelist is None:
        federation = (True, "It federates with every server of the Matrix network.")
    elif not others:
        federation = (False, "It federates with no other server at all.")
    else:
        federation = (True, f"It federates only with: {', '.join(others)}.")
    never = policy.rooms.federation == "never"
    directory = policy.allow_public_rooms_over_federation and policy.enable_room_list_search
    return [
        federation,
        (
            not never,
            "Rooms and spaces created here never federate: nobody from another server can "
            "ever join them."
            if never
            else "Whoever creates a room here chooses whether other servers may join it.",
        ),
        (
            directory and not never,
            "Users of other servers can see the rooms published in this server's directory."
            if directory and not never
            else "Users of other servers cannot see this server's room directory.",
        ),
        (
            policy.allow_profile_lookup_over_federation,
            "Users of other servers can look up the display names and avatars of users here."
            if policy.allow_profile_lookup_over_federation
            else "Users of other servers cannot look up profiles of users here.",
        ),
        (
            policy.allow_device_name_lookup_over_federation,
            "Users of other servers can see the names of the devices of users here."
            if policy.allow_device_name_lookup_over_federation
            else "Users of other servers see devices of users here without their names.",
        ),
        (
            policy.user_directory.search_all_users
            and not policy.user_directory.exclude_remote_users,
            "User search here finds every user this server knows, local or remote."
            if policy.user_directory.search_all_users
            else "User search here finds only people in public rooms or sharing a room "
            "with the searcher.",
        ),
    ]
