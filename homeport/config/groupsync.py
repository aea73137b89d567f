"""The `group_sync:` section: LDAP or Active Directory groups drive space membership.

A space is mapped to a directory group; group sync joins the group's people
to the space (and to its child rooms), gives power to the members of chosen
groups, and removes the people it added once they leave the group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from homeport.config.base import StrictModel
from homeport.config.fields import Port
from homeport.config.types import Duration, localpart_check

check_alias = localpart_check("an alias", "it becomes #<alias>:<server name>")


def check_ldap_uri(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(
            f"{value!r} is not an LDAP server address: write ldap://HOST[:PORT] or "
            "ldaps://HOST[:PORT]"
        )
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"{value!r} is not a regular expression: {error}") from None
    return value


def check_group(value: str) -> str:
    if not value.strip():
        raise ValueError("a group name must not be empty")
    return value


@dataclass(frozen=True)
class GroupRef:
    """A directory group as the file names it: by its cn, searched under `group_base`,
    or by its full DN. The kind is said once, where the file says it (`ldap_cn` or
    `ldap_dn`); nothing downstream guesses it from the text, so a cn holding '=' is
    still a cn."""

    kind: Literal["cn", "dn"]
    value: str

    @classmethod
    def named(cls, name: str) -> GroupRef:
        """A group the file gives by one bare name, a `power_levels` key: a DN when it
        holds '=', a cn otherwise. The only place a name's kind is read from its text."""
        return cls("dn" if "=" in name else "cn", name)

    def __str__(self) -> str:
        """For people: `cn=staff`, or the DN as written."""
        return f"cn={self.value}" if self.kind == "cn" else self.value


Alias = Annotated[str, AfterValidator(check_alias)]
LdapUri = Annotated[str, AfterValidator(check_ldap_uri)]
Regex = Annotated[str, AfterValidator(check_regex)]
GroupName = Annotated[str, AfterValidator(check_group)]


class LdapAttributes(StrictModel):
    """Which attribute of a person's entry gives each Matrix field."""

    localpart: str = Field(
        default="uid",
        description="The user name: @<value>:<server name>, lower-cased "
        "(`sAMAccountName` with `active_directory`).",
    )
    displayname: str = Field(default="cn", description="The display name.")
    email: str = Field(default="mail", description="The e-mail address (shown to admins).")


class LdapSettings(StrictModel):
    """The directory: where it is, how to bind, where people and groups are."""

    uri: Annotated[list[LdapUri], BeforeValidator(_one_or_many)] = Field(
        min_length=1,
        description="ldap://HOST:PORT or ldaps://HOST:PORT, or a list of them tried in order "
        "(failover).",
    )
    start_tls: bool = Field(default=False, description="Upgrade ldap:// connections with StartTLS.")
    ca_file: Path | None = Field(
        default=None,
        description="CA certificate that signs the directory's certificate (ldaps:// or "
        "StartTLS); left out: the system's CAs. Verification is always on.",
    )
    bind_dn: str | None = Field(
        default=None, description="Who group sync binds as; left out: an anonymous bind."
    )
    bind_password_file: Path | None = Field(
        default=None,
        description="File holding the bind password (relative to this file; keep it 0600).",
    )
    user_base: str = Field(
        description="Where people are searched, e.g. ou=people,dc=example,dc=org."
    )
    user_filter: str | None = Field(
        default=None,
        description="Which entries are people; left out: (objectClass=inetOrgPerson), or "
        "enabled person accounts with `active_directory`.",
    )
    group_base: str = Field(
        description="Where groups are searched, e.g. ou=groups,dc=example,dc=org."
    )
    attributes: LdapAttributes = Field(
        default_factory=LdapAttributes, description="Attributes that give each Matrix field."
    )
    active_directory: bool = Field(
        default=False,
        description="An Active Directory: `sAMAccountName` by default, disabled accounts "
        "skipped, nested groups resolved by the server.",
    )
    timeout: Duration = Field(
        default="10s", description="Longest wait for the directory on one request."
    )
    page_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Entries per page of a search: groups past the server's size limit are "
        "read whole.",
    )

    @model_validator(mode="after")
    def _password_with_dn(self) -> LdapSettings:
        if (self.bind_password_file is None) != (self.bind_dn is None):
            raise ValueError(
                "`bind_dn` and `bind_password_file` go together: set both to bind as someone, "
                "or neither for an anonymous bind"
            )
        return self

    @property
    def people_filter(self) -> str:
        if self.user_filter:
            return self.user_filter
        if self.active_directory:
            return "(&(objectCategory=person)(objectClass=user))"
        return "(objectClass=inetOrgPerson)"

    @property
    def localpart_attribute(self) -> str:
        if self.active_directory and "localpart" not in self.attributes.model_fields_set:
            return "sAMAccountName"
        return self.attributes.localpart


class SpaceMapping(StrictModel):
    """A space whose members are the people of a directory group."""

    name: str = Field(min_length=1, max_length=255, description="The space's name.")
    alias: Alias = Field(description="Its address: #<alias>:<server name>; also its identity.")
    ldap_cn: GroupName | None = Field(
        default=None, description="The group, by its cn (searched under `group_base`)."
    )
    ldap_dn: GroupName | None = Field(default=None, description="Or the group, by its full DN.")
    power_levels: dict[GroupName, Annotated[int, Field(ge=0, le=100)]] = Field(
        default_factory=dict,
        description="Groups (cn or DN) whose members get a power level here, e.g. "
        "{admins: 100}; they become members too. The highest level wins.",
    )
    rooms: list[Alias] = Field(
        default_factory=list,
        description="Child rooms by alias, created when missing; the space's members join them.",
    )
    subspaces: list[SpaceMapping] = Field(
        default_factory=list,
        description="Spaces inside this one; their members are members of this one too.",
    )

    @model_validator(mode="after")
    def _one_group(self) -> SpaceMapping:
        if (self.ldap_cn is None) == (self.ldap_dn is None):
            raise ValueError(f"space {self.alias!r} needs exactly one of `ldap_cn` and `ldap_dn`")
        return self

    @property
    def group(self) -> GroupRef:
        """The mapped group: `ldap_cn` or `ldap_dn`, whichever is set (exactly one is)."""
        if self.ldap_dn is not None:
            return GroupRef("dn", self.ldap_dn)
        assert self.ldap_cn is not None  # `_one_group`
        return GroupRef("cn", self.ldap_cn)

    @property
    def power_groups(self) -> dict[GroupRef, int]:
        """`power_levels` by group."""
        return {GroupRef.named(name): level for name, level in self.power_levels.items()}

    def walk(self) -> list[SpaceMapping]:
        """This space and every space below it, parents first."""
        return [self, *(space for sub in self.subspaces for space in sub.walk())]


class GroupSync(StrictModel):
    """Directory groups that drive space membership on one homeserver."""

    homeserver: str = Field(description="Whose users and spaces (a homeserver of this file).")
    port: Port = Field(
        description="Loopback port of the group sync service's /health and /metrics "
        "(HTTP on 127.0.0.1 only).",
    )
    interval: Duration = Field(
        default="60s",
        description="Period of the full reconcile; directory changes are picked up in "
        "seconds in between.",
    )
    ldap: LdapSettings = Field(description="The directory.")
    never_remove: list[Regex] = Field(
        default_factory=list,
        description="Regular expressions of user IDs group sync never removes, besides "
        "Homeport's own accounts and audit bots.",
    )
    max_removal_share: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="A run that would remove more than this share of a space's or room's "
        "members (and more than one) removes nobody unless forced.",
    )
    login: bool = Field(
        default=True,
        description="Let the directory's people log in to the homeserver with their directory "
        "password (Synapse's LDAP auth provider, from the same `ldap:` settings).",
    )
    spaces: list[SpaceMapping] = Field(min_length=1, description="The mapped spaces.")

    def all_spaces(self) -> list[SpaceMapping]:
        return [space for top in self.spaces for space in top.walk()]
