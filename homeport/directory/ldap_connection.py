"""Connecting to the directory with python-ldap: bounded waits, failover, verified TLS.

Shared by everything that reads the directory (group sync's reader and change
watcher, directory login inside Synapse, `homeport groupsync link`), so that
each waits at most `timeout` per request, tries the servers in `uri` order,
and says in words what went wrong.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import ldap

from homeport.config.groupsync import LdapSettings
from homeport.config.types import duration_ms
from homeport.errors import HomeportError

# Errors that say "this server did not answer": the next URI is tried.
UNREACHABLE = (ldap.SERVER_DOWN, ldap.CONNECT_ERROR, ldap.TIMEOUT, ldap.UNAVAILABLE, ldap.BUSY)
# Binds refused because the connection is not encrypted (AD's default for simple binds).
_PLAINTEXT_REFUSED = (ldap.STRONG_AUTH_REQUIRED, ldap.CONFIDENTIALITY_REQUIRED)


class DirectoryUnavailable(HomeportError):
    """The directory could not be read whole; nothing may be removed on its word."""


def describe(error: ldap.LDAPError) -> str:
    """What the server or libldap said, without the noise; never holds a password."""
    info = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    text = str(info.get("desc", type(error).__name__))
    detail = str(info.get("info") or "")
    if detail and detail != "(unknown error code)":
        text += f" ({detail})"
    return text


# Connecting -----------------------------------------------------------------------


def _password(settings: LdapSettings) -> str:
    path = settings.bind_password_file
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise DirectoryUnavailable(
            f"cannot read group_sync.ldap.bind_password_file {path}: {error.strerror}; "
            "create it with the bind password on one line (mode 0600)"
        ) from error


def _set_options(conn: Any, settings: LdapSettings) -> None:
    """Per-connection options; NEWCTX last, so the TLS context takes the ones before it."""
    seconds = duration_ms(settings.timeout) / 1000
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, seconds)
    conn.set_option(ldap.OPT_TIMEOUT, seconds)
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    if settings.ca_file is not None:
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(settings.ca_file))
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)


def close(conn: Any) -> None:
    with contextlib.suppress(ldap.LDAPError):
        conn.unbind_s()


def _port_open(uri: str, seconds: float) -> bool:
    parts = urlsplit(uri)
    port = parts.port or (636 if parts.scheme == "ldaps" else 389)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=seconds):
            return True
    except OSError:
        return False


def _unreachable(uri: str, settings: LdapSettings, error: ldap.LDAPError) -> str:
    """Why `uri` did not answer; a port that answers means TLS failed (libldap won't say)."""
    text = describe(error)
    tls = uri.startswith("ldaps://") or settings.start_tls
    if tls and _port_open(uri, min(duration_ms(settings.timeout) / 1000, 3.0)):
        host = urlsplit(uri).hostname
        trust = f"ca_file {settings.ca_file} holds" if settings.ca_file else "the system's CAs hold"
        text += (
            f"; the server answers but the TLS handshake failed: check that {trust} the CA "
            f"that signed its certificate, and that the certificate names {host}"
        )
    return text


def _bind(conn: Any, settings: LdapSettings, uri: str, password: str) -> None:
    if settings.start_tls and uri.startswith("ldap://"):
        conn.start_tls_s()
    if settings.bind_dn is None:
        conn.simple_bind_s("", "")
    else:
        conn.simple_bind_s(settings.bind_dn, password)


def connect(settings: LdapSettings, factory: Callable[[str], Any] = ldap.initialize) -> Any:
    """A bound connection to the first server that answers, tried in `uri` order.

    Only a server that does not answer is skipped: a refused bind would be
    refused by the next one too, so it raises at once. `factory` makes the
    connection object for a URI (the watcher's syncrepl consumer is one)."""
    password = _password(settings)
    tried: list[str] = []
    for uri in settings.uri:
        conn = factory(uri)
        _set_options(conn, settings)
        try:
            _bind(conn, settings, uri, password)
        except ldap.INVALID_CREDENTIALS as error:
            close(conn)
            raise DirectoryUnavailable(
                f"{uri} refused the bind as {settings.bind_dn!r}: wrong DN or password; check "
                "group_sync.ldap.bind_dn and the password in the file bind_password_file "
                f"({settings.bind_password_file})"
            ) from error
        except _PLAINTEXT_REFUSED as error:
            close(conn)
            raise DirectoryUnavailable(
                f"{uri} wants an encrypted connection before a bind ({describe(error)}), as "
                "Active Directory does by default: use an ldaps:// address, or start_tls: true, "
                "with the directory's CA in group_sync.ldap.ca_file"
            ) from error
        except UNREACHABLE as error:
            close(conn)
            tried.append(f"{uri}: {_unreachable(uri, settings, error)}")
            continue
        except ldap.LDAPError as error:
            close(conn)
            who = "anonymous bind" if settings.bind_dn is None else f"bind as {settings.bind_dn!r}"
            raise DirectoryUnavailable(f"{uri} refused the {who}: {describe(error)}") from error
        return conn
    raise DirectoryUnavailable(
        "no directory server answered; tried in order: "
        + "; ".join(tried)
        + ". Check group_sync.ldap.uri, and that the directory runs and is reachable from here"
    )
