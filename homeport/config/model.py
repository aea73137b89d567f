"""The deployment model: one `homeport.yaml` describes every homeserver.

Field docstrings double as documentation: `docs/configuration.md` is checked
against them by a test, so a setting cannot go undocumented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from homeport.config.types import (
    Database,
    IpAddress,
    ServerName,
    check_homeserver_name,
    split_server_name,
)

HomeserverName = Annotated[str, AfterValidator(check_homeserver_name)]

# Synapse settings that Homeport derives from the model. Letting the
# passthrough override them would silently break federation, TLS or the data
# layout, so they are refused with a pointer to the Homeport key to use.
RESERVED_SYNAPSE_KEYS: dict[str, str] = {
    "server_name": "set `server_name` on the homeserver",
    "listeners": "set `address` and `port` on the homeserver",
    "public_baseurl": "set `public_baseurl` on the homeserver",
    "database": "set `database` on the homeserver (sqlite or a postgresql:// URL)",
    "tls_certificate_path": "set `tls.certificate` on the homeserver",
    "tls_private_key_path": "set `tls.key` on the homeserver",
    "federation_custom_ca_list": "list extra CA files in the top-level `trusted_ca_files`",
    "federation_verify_certificates": "certificate verification always stays on",
    "federation_certificate_verification_whitelist": "certificate verification always stays on",
    "signing_key_path": "Homeport generates and keeps the signing key in the data folder",
    "media_store_path": "Homeport keeps media under the data folder",
    "log_config": "Homeport renders the log configuration",
    "pid_file": "Homeport supervises the process itself",
    "registration_shared_secret": "Homeport generates secrets once and stores them with mode 0600",
    "registration_shared_secret_path": "Homeport generates secrets once and stores them",
    "macaroon_secret_key": "Homeport generates secrets once and stores them with mode 0600",
    "macaroon_secret_key_path": "Homeport generates secrets once and stores them",
    "form_secret": "Homeport generates secrets once and stores them with mode 0600",
    "form_secret_path": "Homeport generates secrets once and stores them",
    **{
        key: f"set `policy.{key}` on the homeserver, so that lint and verify see it"
        for key in (
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
    },
}


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsFiles(StrictModel):
    """A certificate and key of your own, for production; otherwise the local CA issues one."""

    certificate: Path = Field(description="PEM certificate chain for the server name's host.")
    key: Path = Field(description="PEM private key of that certificate (keep it mode 0600).")


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


class Homeserver(StrictModel):
    """One Synapse homeserver of the deployment."""

    server_name: ServerName = Field(
        description="The Matrix server name, `host[:port]`; user IDs end in it. "
        "With an explicit port, other servers connect straight to that port over TLS."
    )
    address: IpAddress = Field(
        default="127.0.0.1", description="IP address the TLS listener binds to."
    )
    port: int = Field(
        ge=1, le=65535, description="TCP port of the TLS listener (federation and client API)."
    )
    public_baseurl: str | None = Field(
        default=None,
        description="URL clients use; defaults to https://<server name host>:<port>/.",
    )
    database: Database = Field(
        default="sqlite",
        description="`sqlite` (a file in the data folder) or a postgresql://user@host:port/db URL.",
    )
    tls: TlsFiles | None = Field(
        default=None, description="Your own certificate and key instead of the local CA's."
    )
    policy: Policy = Field(default_factory=Policy, description="Federation and visibility policy.")
    synapse: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other Synapse setting, merged over what Homeport renders.",
    )

    @property
    def federation_port(self) -> int:
        """The port other servers connect to (explicit in the server name, else 8448)."""
        return split_server_name(self.server_name).port or 8448

    @property
    def base_url(self) -> str:
        if self.public_baseurl:
            return self.public_baseurl.rstrip("/")
        host = split_server_name(self.server_name).host
        return f"https://{host}:{self.port}"


class AdminSite(StrictModel):
    """The admin website that `homeport up` serves (and `homeport admin` alone)."""

    address: IpAddress = Field(
        default="127.0.0.1", description="IP address the website's HTTPS listener binds to."
    )
    port: int = Field(ge=1, le=65535, description="TCP port of the website (HTTPS).")
    host: str = Field(
        default="localhost",
        description="Host name in the website's URL; the local CA issues its certificate.",
    )
    session_idle_minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="A session without requests ends after this."
    )

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"


class Deployment(StrictModel):
    """Everything `homeport up` runs, as one file describes it."""

    data_dir: Path = Field(
        default=Path("data"),
        description="Where keys, certificates, databases, media and logs live "
        "(relative to this file).",
    )
    trusted_ca_files: list[Path] = Field(
        default_factory=list,
        description="Extra CA certificates trusted for federation, besides the local CA.",
    )
    homeservers: dict[HomeserverName, Homeserver] = Field(
        min_length=1, description="The homeservers, by a short name such as `internal`."
    )
    admin: AdminSite | None = Field(
        default=None,
        description="The admin website (login as a server admin); left out: no website.",
    )
