"""Where everything lives in the data folder. Pure: computing a path touches no disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HomeserverLayout:
    """The files of one homeserver under `<data_dir>/homeservers/<name>/`."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "homeserver.yaml"

    @property
    def log_config_file(self) -> Path:
        return self.root / "log.config.yaml"

    @property
    def first_start_config(self) -> Path:
        """Loaded after `config_file` by the start that creates the database only."""
        return self.root / "first-start.yaml"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def signing_key(self) -> Path:
        return self.keys_dir / "signing.key"

    @property
    def registration_shared_secret(self) -> Path:
        return self.keys_dir / "registration_shared_secret"

    @property
    def macaroon_secret_key(self) -> Path:
        return self.keys_dir / "macaroon_secret_key"

    @property
    def form_secret(self) -> Path:
        return self.keys_dir / "form_secret"

    @property
    def service_account(self) -> Path:
        """Credentials of Homeport's own admin account on this homeserver."""
        return self.keys_dir / "service_account.json"

    @property
    def replication_secret(self) -> Path:
        """Authenticates HTTP replication between its Synapse processes (0600)."""
        return self.keys_dir / "replication_secret"

    def worker_config_file(self, worker: str) -> Path:
        """A worker's own settings, read after `homeserver.yaml`."""
        return self.root / "workers" / f"{worker}.yaml"

    def worker_log_config_file(self, worker: str) -> Path:
        return self.root / "workers" / f"{worker}.log.config.yaml"

    def worker_log_file(self, worker: str) -> Path:
        return self.log_dir / f"{worker}.log"

    def worker_console_log_file(self, worker: str) -> Path:
        """A worker's stdout and stderr (tracebacks from before its logging starts)."""
        return self.log_dir / f"{worker}.console.log"

    @property
    def tls_certificate(self) -> Path:
        return self.root / "tls" / "server.crt"

    @property
    def tls_key(self) -> Path:
        return self.root / "tls" / "server.key"

    @property
    def public_tls_certificate(self) -> Path:
        """The proxy's certificate for the homeserver's `public_host`, from the local CA."""
        return self.root / "tls" / "public.crt"

    @property
    def public_tls_key(self) -> Path:
        return self.root / "tls" / "public.key"

    @property
    def sqlite_database(self) -> Path:
        return self.root / "homeserver.db"

    @property
    def media_store(self) -> Path:
        return self.root / "media_store"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "homeserver.log"

    @property
    def console_log_file(self) -> Path:
        """Synapse's stdout and stderr: tracebacks from before logging is set up land here."""
        return self.log_dir / "console.log"


@dataclass(frozen=True)
class AuditLayout:
    """The audit bot of one homeserver, under `<data_dir>/audit/<name>/`."""

    root: Path

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def as_token(self) -> Path:
        """The bot's token toward Synapse (application service `as_token`)."""
        return self.keys_dir / "as_token"

    @property
    def hs_token(self) -> Path:
        """Synapse's token toward the bot (`hs_token`): transactions carry it."""
        return self.keys_dir / "hs_token"

    @property
    def registration(self) -> Path:
        """The application service registration Synapse loads (mode 0600: it holds tokens)."""
        return self.keys_dir / "registration.yaml"

    @property
    def crypto_dir(self) -> Path:
        """The bot's end-to-end encryption keys (its device, room keys)."""
        return self.keys_dir / "crypto"

    @property
    def device_file(self) -> Path:
        """The bot's device ID, kept so that a restart is the same device."""
        return self.keys_dir / "device.json"

    @property
    def export_cursor(self) -> Path:
        """How far the continuous export has written."""
        return self.root / "export.cursor"

    @property
    def log_file(self) -> Path:
        return self.root / "audit.log"


@dataclass(frozen=True)
class DeploymentLayout:
    """The data folder of a whole deployment."""

    data_dir: Path

    def kubernetes_postgres_password(self, name: str) -> Path:
        """The bundled PostgreSQL's password of homeserver `name` in a cluster (0600)."""
        return self.data_dir / "kubernetes" / name / "postgres_password"

    def kubernetes_redis_password(self, name: str) -> Path:
        """The password of the Redis bundled with homeserver `name`'s workers (0600)."""
        return self.data_dir / "kubernetes" / name / "redis_password"

    def kubernetes_service_account(self, name: str) -> Path:
        """The service account the cluster's pods share for homeserver `name`, when this
        machine has none of its own (0600)."""
        return self.data_dir / "kubernetes" / name / "service_account.json"

    @property
    def ca_certificate(self) -> Path:
        return self.data_dir / "ca" / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.data_dir / "ca" / "ca.key"

    @property
    def admin_tls_certificate(self) -> Path:
        return self.data_dir / "admin" / "tls" / "server.crt"

    @property
    def admin_tls_key(self) -> Path:
        return self.data_dir / "admin" / "tls" / "server.key"

    @property
    def host_console(self) -> Path:
        """What the process hosting Homeport's own services prints (tracebacks)."""
        return self.data_dir / "logs" / "services.console.log"

    @property
    def groupsync_log(self) -> Path:
        """The group sync service's structured log."""
        return self.data_dir / "logs" / "groupsync.log"

    @property
    def conference_dir(self) -> Path:
        return self.data_dir / "conference"

    @property
    def conference_auth_token(self) -> Path:
        """The bearer token Prosody presents to the conference service (0600)."""
        return self.conference_dir / "auth_token"

    @property
    def conference_jitsi_secret(self) -> Path:
        """Jitsi's `app_secret` when the file names none (generated once, 0600)."""
        return self.conference_dir / "jitsi_app_secret"

    @property
    def conference_livekit_secret(self) -> Path:
        """The LiveKit API secret when the file names none (generated once, 0600)."""
        return self.conference_dir / "livekit_secret"

    @property
    def conference_jitsi_well_known(self) -> Path:
        """`/.well-known/element/jitsi` for the Jitsi domain's web server to serve."""
        return self.conference_dir / "well-known" / "element" / "jitsi"

    @property
    def conference_tls_certificate(self) -> Path:
        return self.conference_dir / "tls" / "server.crt"

    @property
    def conference_tls_key(self) -> Path:
        return self.conference_dir / "tls" / "server.key"

    @property
    def alerts_log(self) -> Path:
        """The alerts service's structured log (JSON lines)."""
        return self.data_dir / "logs" / "alerts.log"

    @property
    def conference_log(self) -> Path:
        """The conference service's structured log."""
        return self.data_dir / "logs" / "conference.log"

    @property
    def nginx_dir(self) -> Path:
        """The nginx `up` runs (proxy.managed): its rendered files, pid, logs, temp folders."""
        return self.data_dir / "nginx"

    @property
    def verify_lock(self) -> Path:
        """Held by a running `homeport verify`: one at a time, so leftovers can be swept."""
        return self.data_dir / "verify.lock"

    @property
    def store_database(self) -> Path:
        """Homeport's own store, when it is SQLite."""
        return self.data_dir / "homeport.db"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "homeport.lock"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def held_file(self) -> Path:
        """Homeservers an administrator stopped; they stay down until started."""
        return self.run_dir / "held.json"

    @property
    def applied_file(self) -> Path:
        """What each running homeserver was started with (identity and config digest)."""
        return self.run_dir / "applied.json"

    @property
    def supervisor_log(self) -> Path:
        return self.data_dir / "logs" / "homeport.log"

    def homeserver(self, name: str) -> HomeserverLayout:
        return HomeserverLayout(self.data_dir / "homeservers" / name)

    def audit(self, name: str) -> AuditLayout:
        return AuditLayout(self.data_dir / "audit" / name)
