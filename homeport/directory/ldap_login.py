"""A directory password check for login, with group sync's own reader.

Login and group sync read the directory through the same code (its TLS with
verification, failover across `uri`, Active Directory's filters and enabled
accounts only), so they can never disagree about who a person is or what
their Matrix name is. Synchronous (python-ldap): Synapse runs it in a thread.

Every request is bounded by `timeout`; a server that does not answer is
skipped for the next `uri`. The caller bounds how often a dead directory is
tried at all (`homeport.synapse_module.directory_login`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import ldap
import ldap.filter

from homeport.config.groupsync import LdapSettings
from homeport.directory.ldap_connection import DirectoryUnavailable, connect, describe
from homeport.directory.ldap_reader import people_filter, person_attributes, person_of
from homeport.directory.model import Person

# Active Directory's down-level logon name: DOMAIN\user.
_DOWN_LEVEL = "\\"


@dataclass(frozen=True)
class LoginName:
    """What a person typed, as a directory search: which attribute, which value."""

    attribute: str
    value: str


def login_name(settings: LdapSettings, typed: str, server_name: str) -> LoginName | None:
    """How to find the person who typed `typed`; None when it is not a name of ours.

    `@alice:server` and `alice` name the localpart attribute; on Active Directory
    `alice@corp.example` is a user principal name and `CORP\\alice` a down-level
    logon name. A Matrix ID of another server is not ours to check.
    """
    name = typed.strip()
    if not name:
        return None
    if name.startswith("@"):
        localpart, _, server = name[1:].partition(":")
        if server != server_name or not localpart:
            return None
        return LoginName(settings.localpart_attribute, localpart)
    if settings.active_directory and _DOWN_LEVEL in name:
        return LoginName(settings.localpart_attribute, name.rsplit(_DOWN_LEVEL, 1)[1])
    if settings.active_directory and "@" in name:
        return LoginName("userPrincipalName", name)
    if "@" in name or ":" in name:
        return None
    return LoginName(settings.localpart_attribute, name)


def search_filter(settings: LdapSettings, name: LoginName) -> str:
    value = ldap.filter.escape_filter_chars(name.value)
    return f"(&{people_filter(settings)}({name.attribute}={value}))"


def find_person(conn: Any, settings: LdapSettings, name: LoginName) -> Person | None:
    """The one enabled person of that name; None for nobody, or several (ambiguous)."""
    try:
        found = conn.search_ext_s(
            settings.user_base,
            ldap.SCOPE_SUBTREE,
            search_filter(settings, name),
            person_attributes(settings),
            sizelimit=2,
        )
    except ldap.SIZELIMIT_EXCEEDED:
        return None  # two people answer to the name: neither may log in by it
    except ldap.LDAPError as error:
        raise DirectoryUnavailable(f"the login search failed: {describe(error)}") from error
    entries = [(dn, attrs) for dn, attrs in found if dn is not None]
    if len(entries) != 1:
        return None
    return person_of(settings, *entries[0])


@dataclass(frozen=True)
class Checked:
    person: Person | None  # None: wrong password, or no such person
    uri: str  # the server that answered: worth asking first next time


def check_password(settings: LdapSettings, name: LoginName, password: str) -> Checked:
    """Whether `password` is the person's, asked of the first server that answers.

    Raises DirectoryUnavailable when the directory cannot say: no server
    answered within `timeout`, or the service bind was refused.
    """
    service = connect(settings)
    uri = str(getattr(service, "_uri", settings.uri[0]))
    try:
        person = find_person(service, settings, name)
    finally:
        _unbind(service)
    if person is None or not password:  # an empty password would bind anonymously
        return Checked(None, uri)
    same_server = settings.model_copy(update={"bind_dn": None, "uri": [uri]})
    try:
        conn = connect(same_server, _bind_factory(person.dn, password))
    except _WrongPassword:
        return Checked(None, uri)
    _unbind(conn)
    return Checked(person, uri)


def answering_first(settings: LdapSettings, uri: str) -> LdapSettings:
    """The same settings, with the server that answered last tried first."""
    if settings.uri[0] == uri or uri not in settings.uri:
        return settings
    return settings.model_copy(update={"uri": [uri, *(u for u in settings.uri if u != uri)]})


class _WrongPassword(DirectoryUnavailable):
    """The directory refused the person's bind: not an outage."""


def _bind_factory(dn: str, password: str) -> Any:
    """A connection factory whose bind is the person's own (see `connect`'s `factory`)."""

    def make(uri: str) -> Any:
        return _PersonConnection(ldap.initialize(uri), dn, password)

    return make


class _PersonConnection:
    """A python-ldap connection that binds as the person whatever `connect` asks."""

    def __init__(self, conn: Any, dn: str, password: str) -> None:
        self._conn = conn
        self._dn = dn
        self._password = password

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def simple_bind_s(self, _who: str, _cred: str) -> Any:
        try:
            return self._conn.simple_bind_s(self._dn, self._password)
        except ldap.INVALID_CREDENTIALS as error:
            _unbind(self._conn)
            raise _WrongPassword("wrong password") from error


def _unbind(conn: Any) -> None:
    with contextlib.suppress(ldap.LDAPError):
        conn.unbind_s()
