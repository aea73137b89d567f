"""One homeserver of the deployment: where it listens, its database, TLS, policy, passthrough."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from homeport.config.audit import AuditBot
from homeport.config.base import StrictModel
from homeport.config.federation import FederationRetries
from homeport.config.fields import Port, listen_address
from homeport.config.policy import POLICY_SYNAPSE_KEYS, Policy
from homeport.config.types import (
    Database,
    Host,
    IpAddress,
    ServerName,
    check_homeserver_name,
    connect_address,
    split_server_name,
)
from homeport.config.workers import Workers

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
    **dict.fromkeys(
        (
            "redis",
            "instance_map",
            "stream_writers",
            "federation_sender_instances",
            "pusher_instances",
            "run_background_tasks_on",
            "worker_replication_secret",
            "worker_replication_secret_path",
            "media_instance_running_background_jobs",
            "worker_app",
            "worker_name",
            "worker_listeners",
        ),
        "set `workers:` on the homeserver (and `redis:` at the top level); Homeport "
        "renders the worker settings",
    ),
    **{
        key: f"set `policy.{key}` on the homeserver, so that lint and verify see it"
        for key in POLICY_SYNAPSE_KEYS
    },
}


class TlsFiles(StrictModel):
    """A certificate and key of your own, for production; otherwise the local CA issues one."""

    certificate: Path = Field(description="PEM certificate chain for the server name's host.")
    key: Path = Field(description="PEM private key of that certificate (keep it mode 0600).")


class Homeserver(StrictModel):
    """One Synapse homeserver of the deployment."""

    server_name: ServerName = Field(
        description="The Matrix server name, `host[:port]`; user IDs end in it. "
        "With an explicit port, other servers connect straight to that port over TLS."
    )
    address: IpAddress = listen_address("TLS listener")
    port: Port = Field(description="TCP port of the TLS listener (federation and client API).")
    public_baseurl: str | None = Field(
        default=None,
        description="URL clients use; defaults to https://<server name host>:<port>/, "
        "or with `proxy:` to https://<public host>/.",
    )
    public_host: str | None = Field(
        default=None,
        description="With `proxy:`, the host name that serves this homeserver's client and "
        "federation APIs (e.g. matrix.example.org for server name example.org); left out: "
        "the server name's host.",
    )
    service_host: Host | None = Field(
        default=None,
        description="Where Homeport's own services (website, bots, group sync, verify) "
        "connect to this Synapse's listener, when not at its address: a host name or "
        "address (its certificate is still checked against the server name's host); the "
        "Kubernetes rendering sets it to Synapse's Service. Left out: the listener's address.",
    )
    database: Database = Field(
        default="sqlite",
        description="`sqlite` (a file in the data folder) or a postgresql://user@host:port/db URL.",
    )
    tls: TlsFiles | None = Field(
        default=None, description="Your own certificate and key instead of the local CA's."
    )
    policy: Policy = Field(default_factory=Policy, description="Federation and visibility policy.")
    federation_retries: FederationRetries = Field(
        default_factory=FederationRetries,
        description="How soon a failing server is noticed and a recovered one retried.",
    )
    audit: AuditBot | None = Field(
        default=None,
        description="The audit bot: records the local rooms administrators choose.",
    )
    workers: Workers = Field(
        default_factory=Workers,
        description="Synapse worker processes beside the main one (PostgreSQL and `redis:` "
        "needed); left out: none, one process does everything.",
    )
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

    @property
    def tls_name(self) -> str:
        """The host name Synapse's own certificate is checked against."""
        return split_server_name(self.server_name).host.strip("[]")

    @property
    def served_host(self) -> str:
        """The host name the proxy serves this homeserver on."""
        return self.public_host or self.tls_name

    @property
    def local_url(self) -> str:
        """Synapse's own listener, as Homeport's services on this machine reach it.

        Never the public URL: behind a proxy that is the proxy, which refuses
        the admin API to everyone but `admin_from`, and the public host may
        not even resolve to this machine. The certificate is still checked,
        against `tls_name`.
        """
        address = self.local_address
        host = f"[{address}]" if ":" in address else address
        return f"https://{host}:{self.port}"

    @property
    def local_address(self) -> str:
        """The host to connect to: `service_host`, else the bound address (loopback for all)."""
        return self.service_host or connect_address(self.address)

    @property
    def audit_bot(self) -> AuditBot | None:
        """The audit bot when it runs; None when absent or disabled."""
        return self.audit if self.audit is not None and self.audit.enabled else None

    @property
    def bot_localparts(self) -> tuple[str, ...]:
        """The audit bot's name, even when switched off: its account stays Homeport's."""
        return () if self.audit is None else (self.audit.localpart,)

    @property
    def audit_user_id(self) -> str | None:
        bot = self.audit_bot
        return None if bot is None else f"@{bot.localpart}:{self.server_name}"
