"""The `policy:` section of a homeserver: what other servers' users may see of it.

Synapse's own setting names, so that an administrator who knows Synapse reads
it at once; `homeport.policy` says what each setting means for each surface.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from homeport.config.base import StrictModel
from homeport.config.types import check_server_name


def check_space_reference(value: str) -> str:
    """An internal space: `#alias:server` or `#alias` (on this homeserver), or a room ID."""
    sigil, body = value[:1], value[1:]
    local, _, server = body.partition(":")
    if sigil not in ("#", "!") or not local or any(c.isspace() for c in value):
        raise ValueError(
            f"{value!r} names no space: write its alias (#staff:example.org, or #staff on "
            "this homeserver) or its room ID (!abc123:example.org)"
        )
    if server:
        check_server_name(server)
    return value


SpaceReference = Annotated[str, AfterValidator(check_space_reference)]


def internal_space(reference: str, server_name: str) -> str:
    """A reference as Synapse reads it: `#staff` is `#staff:<server name>`."""
    if reference.startswith("#") and ":" not in reference:
        return f"{reference}:{server_name}"
    return reference


class UserDirectory(StrictModel):
    """Synapse's `user_directory` section: who the users of this server find in search."""

    enabled: bool = Field(default=True, description="Whether user search answers at all.")
    search_all_users: bool = Field(
        default=False,
        description="Search every user this server knows, not only those in public "
        "rooms or sharing a room with the searcher.",
    )
    prefer_local_users: bool = Field(default=False, description="Rank local users first.")
    exclude_remote_users: bool = Field(default=False, description="Return only local users.")


class PublicationRule(StrictModel):
    """One rule of Synapse's `room_list_publication_rules` (globs; first match wins)."""

    user_id: str = Field(default="*", description="Glob on the publishing user's ID.")
    alias: str = Field(default="*", description="Glob on one of the room's aliases.")
    room_id: str = Field(default="*", description="Glob on the room ID.")
    action: Literal["allow", "deny"] = Field(description="`allow` or `deny`.")


class RoomPolicy(StrictModel):
    """What Synapse cannot express: whether rooms created here may federate at all."""

    federation: Literal["never", "creator_choice"] = Field(
        default="creator_choice",
        description="`never`: every room and space created on this homeserver is "
        "non-federated (`m.federate: false`), enforced by the Homeport module; "
        "`creator_choice`: the creator decides, as in plain Synapse.",
    )
    internal_spaces: list[SpaceReference] = Field(
        default_factory=list,
        description="Spaces of this homeserver whose rooms never federate, for one homeserver "
        "that talks to the outside too: each by its alias (`#staff:example.org`, or `#staff`) "
        "or room ID. Their subspaces are internal too. The Homeport module creates every "
        "room and subspace made in them non-federated, refuses to add a federated room to "
        "them and to let another server's user in; `homeport verify` and the website report "
        "what was there before (docs/visibility.md).",
    )


class Policy(StrictModel):
    """Federation and visibility policy of one homeserver, in Synapse's own setting names."""

    federation_domain_whitelist: list[str] | None = Field(
        default=None,
        description="Servers this homeserver federates with: server names or names of "
        "homeservers in this file. Left out: everyone. `[]`: no federation. The server's "
        "own name is always added.",
    )
    allow_public_rooms_over_federation: bool = Field(
        default=False,
        description="Whether other servers' users may read our public room directory.",
    )
    enable_room_list_search: bool = Field(
        default=True,
        description="Whether the room directory exists at all (local and remote).",
    )
    room_list_publication_rules: list[PublicationRule] | None = Field(
        default=None,
        description="Who may publish rooms to our directory (Synapse's rules, first "
        "match wins). Left out: nobody.",
    )
    allow_profile_lookup_over_federation: bool = Field(
        default=True, description="Whether other servers may look up our users' profiles."
    )
    allow_device_name_lookup_over_federation: bool = Field(
        default=False,
        description="Whether other servers see our users' device display names.",
    )
    user_directory: UserDirectory = Field(
        default_factory=UserDirectory, description="User search on this server."
    )
    limit_profile_requests_to_users_who_share_rooms: bool = Field(
        default=False,
        description="Profiles only of users who share a room with the requester "
        "(client API; needs `require_auth_for_profile_requests`).",
    )
    require_auth_for_profile_requests: bool = Field(
        default=False, description="Profile requests on the client API need a login."
    )
    rooms: RoomPolicy = Field(
        default_factory=RoomPolicy, description="Whether rooms created here may federate."
    )


# The Synapse settings this section owns: refused under `synapse:`.
POLICY_SYNAPSE_KEYS: tuple[str, ...] = (
    "federation_domain_whitelist",
    "allow_public_rooms_over_federation",
    "enable_room_list_search",
    "room_list_publication_rules",
    "allow_profile_lookup_over_federation",
    "allow_device_name_lookup_over_federation",
    "user_directory",
    "limit_profile_requests_to_users_who_share_rooms",
    "require_auth_for_profile_requests",
)
