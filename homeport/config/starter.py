"""The commented starter file that `homeport init` writes."""

from __future__ import annotations

from pathlib import Path

from homeport.errors import HomeportError

# What both starters say first (then each its scenario) and next: where data lives,
# extra CAs, the admin website.
HEAD = """\
# homeport.yaml: the one source of truth for this deployment.
# Everything else (Synapse configs, certificates, keys) is rendered from it
# into `data_dir` by `homeport render` and `homeport up`; do not edit those.
#
"""
COMMON = """
# Where keys, certificates, databases, media and logs live (relative to this file).
data_dir: data

# Extra CA certificates to trust for federation, besides the local CA
# (for homeservers that bring their own certificates).
trusted_ca_files: []

# The admin website, served by `homeport up` over HTTPS (certificate from the
# local CA): log in with a server admin's Matrix username and password.
admin:
  address: 127.0.0.1
  port: {admin_port}
  host: {host}
  session_idle_minutes: 30

# Federation alerts: when a homeserver of this file (or a server listed under
# `important`) has waited for its events, or not answered, for longer than
# `grace`, the server admins of the homeserver concerned are told in its room
# #homeport-alerts (and on a webhook, if you add one); again when it recovers
# (docs/alerts.md). Incidents are kept for the website's history.
alerts:
  port: {alerts_port}                 # loopback: /health and /metrics
  grace: 2m
  # webhook: {{url: "https://hooks.example.org/matrix", format: slack}}
  # important: {{external: [partner.example.org]}}
"""


STARTER_TEMPLATE = (
    HEAD
    + """\
# Scenario: an organisation runs two homeservers on this machine:
#   internal  a highly secure one for internal communication;
#   external  a relaxed one for talking to the outside.
# They federate with each other over verified TLS, using a local certificate
# authority that Homeport creates once in the data folder.
"""
    + COMMON
    + """
# The conference service: Jitsi's Prosody and Element Call ask it whether a
# user of any homeserver here is who they claim and a member of the room
# (docs/conference.md). `homeport status --json` shows its URL and the files
# holding the token Prosody presents and the secrets to give Jitsi and LiveKit.
conference:
  port: {conference_port}
  # allow_homeservers: [partner.example.org]   # vouch for other servers' users too
  jitsi:
    domain: meet.example.org          # your Jitsi; give it /.well-known/element/jitsi
    app_id: homeport                  # Prosody's app_id (the secret is generated once)
  # livekit:                          # Element Call
  #   url: wss://livekit.example.org
  #   key: homeport                   # LiveKit API key (the secret is generated once)

homeservers:
  internal:
    # The Matrix server name: user IDs end in it (@alice:{host}:{internal_port}).
    # With an explicit port, other servers connect straight to it over TLS.
    server_name: "{host}:{internal_port}"
    # The TLS listener that serves federation and the client API.
    address: 127.0.0.1
    port: {internal_port}
    # `sqlite` (a file in the data folder) or a postgresql://user@host:5432/db URL.
    database: sqlite
    # Your own certificate instead of the local CA's, for production:
    # tls:
    #   certificate: /etc/ssl/internal.crt
    #   key: /etc/ssl/private/internal.key
    # What other servers' users may see of this one (Synapse's own setting
    # names; `homeport verify` proves it, docs/visibility.md explains each).
    policy:
      # Federate only inside the organisation (names of this file or server names).
      federation_domain_whitelist: [internal, external]
      allow_public_rooms_over_federation: false
      allow_profile_lookup_over_federation: false
      allow_device_name_lookup_over_federation: false
      user_directory:
        search_all_users: false
      # Every room and space created here is non-federated (m.federate: false),
      # whatever the client asks, enforced by the Homeport Synapse module.
      rooms:
        federation: never
    # The audit bot (@audit:{host}:{internal_port}): administrators add it to chosen
    # rooms created here (`homeport audit add internal ROOM`, or the admin
    # website); it records everything said there, encrypted or not. It can
    # never be added to a room created on another server (docs/audit.md).
    audit:
      port: {internal_audit_port}       # loopback port where Synapse delivers to it
      auto_join: none       # or local_rooms: every room created here
      # include_direct_messages: false
      # export: {{directory: audit-export}}   # JSON lines, a file per day
    # How soon Synapse notices that a server it sends to is down, and how soon
    # it retries one that is back (docs/configuration.md); Homeport's defaults,
    # for an organisation's own servers: a failure shows within 34 s, a server
    # that is back gets its events within 2 minutes.
    # federation_retries:
    #   max_long_retries: 3
    #   max_long_retry_delay: 10s
    #   destination_min_retry_interval: 30s
    #   destination_max_retry_interval: 1m
    # Any other Synapse setting, merged over what Homeport renders, e.g.:
    # synapse:
    #   max_upload_size: 100M
    synapse: {{}}

  external:
    server_name: "{host}:{external_port}"
    address: 127.0.0.1
    port: {external_port}
    database: sqlite
    policy:
      # No whitelist: federates with anyone.
      allow_public_rooms_over_federation: true
      # Its users may publish rooms to the directory.
      room_list_publication_rules:
        - {{user_id: "*", alias: "*", room_id: "*", action: allow}}
      allow_profile_lookup_over_federation: true
      allow_device_name_lookup_over_federation: false
      rooms:
        federation: creator_choice
    audit:
      port: {external_audit_port}
      auto_join: none
    synapse: {{}}

# Group sync: LDAP or Active Directory groups drive the membership of spaces
# on internal; people join and leave as their groups change (docs/groupsync.md).
# group_sync:
#   homeserver: internal
#   port: 8455                        # loopback: /health and /metrics
#   ldap:
#     uri: ldaps://ldap.example.org
#     bind_dn: cn=matrix,ou=services,dc=example,dc=org
#     bind_password_file: ldap.secret # chmod 600
#     user_base: ou=people,dc=example,dc=org
#     group_base: ou=groups,dc=example,dc=org
#   spaces:
#     - {{name: Staff, alias: staff, ldap_cn: staff, rooms: [general]}}
"""
)


SINGLE_TEMPLATE = (
    HEAD
    + """\
# Scenario: an organisation runs ONE homeserver, which talks to the outside
# (it federates), and keeps its internal communication in internal spaces:
# every room and subspace made in #staff is non-federated, whatever the client
# asks, and no user of another server is ever let in (the Homeport Synapse
# module enforces it; docs/visibility.md compares this model with two
# homeservers). Create the space with the address #staff (Element: "Create a
# space", address "staff"): it is made non-federated too.
"""
    + COMMON
    + """
homeservers:
  main:
    # The Matrix server name: user IDs end in it (@alice:{host}:{port}).
    server_name: "{host}:{port}"
    address: 127.0.0.1
    port: {port}
    # `sqlite` (a file in the data folder) or a postgresql://user@host:5432/db URL.
    database: sqlite
    # What other servers' users may see of this one (Synapse's own setting
    # names; `homeport verify` proves it, docs/visibility.md explains each).
    policy:
      # No whitelist: it federates with anyone.
      allow_public_rooms_over_federation: false
      # Other servers may not look up the profiles of users they share no room
      # with; names in shared rooms still show (they travel in member events).
      allow_profile_lookup_over_federation: false
      allow_device_name_lookup_over_federation: false
      user_directory:
        # Local users find local users in public rooms or shared rooms, and
        # remote users only once they share a room.
        search_all_users: false
      rooms:
        # Rooms outside internal spaces: the creator decides.
        federation: creator_choice
        # Spaces whose rooms and subspaces never federate (by alias or room ID).
        internal_spaces: ["#staff"]
    # The audit bot (@audit:{host}:{port}): administrators add it to chosen
    # rooms created here (`homeport audit add main ROOM`, or the admin website).
    audit:
      port: {audit_port}        # loopback port where Synapse delivers to it
      auto_join: none
    synapse: {{}}
"""
)

MODELS = ("two", "single")  # `homeport init --model`


def single_starter_text(
    host: str = "localhost",
    port: int = 8448,
    admin_port: int = 8449,
    audit_port: int = 8450,
    alerts_port: int = 8451,
) -> str:
    """The one-homeserver starter: a federating homeserver with one internal space."""
    return SINGLE_TEMPLATE.format(
        host=host, port=port, admin_port=admin_port, audit_port=audit_port, alerts_port=alerts_port
    )


def starter_text(
    host: str = "localhost",
    internal_port: int = 8448,
    external_port: int = 8449,
    admin_port: int | None = None,
    internal_audit_port: int | None = None,
    external_audit_port: int | None = None,
    conference_port: int | None = None,
    alerts_port: int | None = None,
) -> str:
    return STARTER_TEMPLATE.format(
        host=host,
        internal_port=internal_port,
        external_port=external_port,
        admin_port=admin_port if admin_port is not None else external_port + 1,
        internal_audit_port=internal_audit_port or external_port + 2,
        external_audit_port=external_audit_port or external_port + 3,
        conference_port=conference_port or external_port + 4,
        alerts_port=alerts_port or external_port + 5,
    )


def write_starter(target: Path, host: str, base_port: int, model: str = "two") -> bool:
    """Write the starter of `model` to `target` unless a file is there; True when written."""
    if target.exists():
        return False
    if model == "single":
        text = single_starter_text(host, base_port, base_port + 1, base_port + 2, base_port + 3)
    else:
        text = starter_text(host, base_port, base_port + 1, base_port + 2)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        return False
    except OSError as error:
        raise HomeportError(f"cannot write {target}: {error.strerror}") from error
    return True
