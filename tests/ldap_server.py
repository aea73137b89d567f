"""A real OpenLDAP for tests: Debian's slapd on a free port, configured from scratch.

cn=config is generated and loaded with slapadd; the database has the syncprov
overlay (syncrepl) and a size limit like Active Directory's MaxPageSize: a
plain search past it fails, a paged search reads everything. That takes
`size.prtotal=unlimited`: without it, slapd caps the total of a paged search
at the hard limit too. Limits never apply to the rootdn, so searches that
must meet them bind as an ordinary reader.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import textwrap
import threading
import time
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any

import ldap
import ldap.modlist

from homeport.config.groupsync import LdapSettings
from homeport.pki import ensure_ca, ensure_leaf
from tests.ports import free_port_run

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "slapd-test-secret"
# Limits never apply to the rootdn: group sync binds as an ordinary reader, as in production.
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-test-secret"
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")
# The provider side of syncrepl (RFC 4533): what DirectoryWatch follows.
SYNCPROV = """
dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov
"""


def _config_ldif(
    root: Path,
    size_limit: int,
    paged_total: str,
    tls: tuple[Path, Path, Path] | None,
    syncprov: bool,
) -> str:
    schemas = "\n".join(f"include: file:///etc/ldap/schema/{name}.ldif" for name in SCHEMAS)
    tls_lines = ""
    if tls is not None:
        ca, cert, key = tls
        tls_lines = (
            f"olcTLSCACertificateFile: {ca}\n"
            f"olcTLSCertificateFile: {cert}\n"
            f"olcTLSCertificateKeyFile: {key}\n"
        )
    return (
        textwrap.dedent(
            f"""\
            dn: cn=config
            objectClass: olcGlobal
            cn: config
            olcPidFile: {root}/slapd.pid
            """
        )
        + tls_lines
        + textwrap.dedent(
            """
            dn: cn=module{0},cn=config
            objectClass: olcModuleList
            cn: module{0}
            olcModulePath: /usr/lib/ldap
            olcModuleLoad: back_mdb
            olcModuleLoad: syncprov

            dn: cn=schema,cn=config
            objectClass: olcSchemaConfig
            cn: schema

            """
        )
        + schemas
        + textwrap.dedent(
            f"""

            dn: olcDatabase={{-1}}frontend,cn=config
            objectClass: olcDatabaseConfig
            objectClass: olcFrontendConfig
            olcDatabase: {{-1}}frontend
            olcSizeLimit: size.soft={size_limit} size.hard={size_limit} size.prtotal={paged_total}

            dn: olcDatabase={{0}}config,cn=config
            objectClass: olcDatabaseConfig
            olcDatabase: {{0}}config
            olcAccess: {{0}}to * by * none

            dn: olcDatabase={{1}}mdb,cn=config
            objectClass: olcDatabaseConfig
            objectClass: olcMdbConfig
            olcDatabase: {{1}}mdb
            olcSuffix: {SUFFIX}
            olcDbDirectory: {root}/db
            olcRootDN: {ADMIN_DN}
            olcRootPW: {ADMIN_PASSWORD}
            olcDbIndex: objectClass eq
            olcDbIndex: entryCSN,entryUUID eq
            olcSizeLimit: size.soft={size_limit} size.hard={size_limit} size.prtotal={paged_total}
            olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
            olcAccess: {{1}}to * by * read
            """
        )
        + (SYNCPROV if syncprov else "")
    )


class Slapd:
    """slapd in the foreground of a child process; `stop()`/`start()` keep port and data.

    Use it as a context manager: the base entries (the suffix, ou=people,
    ou=groups and the reader group sync binds as) exist inside, and slapd is
    gone after, whatever happened.
    """

    def __init__(
        self,
        root: Path,
        size_limit: int = 500,
        tls: bool = False,
        paged_total: int | None = None,
        syncprov: bool = True,
        address: str = "127.0.0.1",
    ) -> None:
        """`paged_total`: a cap even on paged searches (partial results), else none;
        `syncprov=False`: a directory that does not offer syncrepl; `address`: where
        it listens (containers reach the host on their network's gateway)."""
        self.root = root
        self.address = address
        self.size_limit = size_limit
        self.paged_total = "unlimited" if paged_total is None else str(paged_total)
        self.syncprov = syncprov
        self.port = free_port_run(2)
        self.tls_port = self.port + 1
        self.tls = tls
        self.ca_file: Path | None = None
        self.bind_dn = READER_DN
        self.password = READER_PASSWORD
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"ldap://{self.address}:{self.port}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://{self.address}:{self.tls_port}"

    def _configure(self) -> None:
        shutil.rmtree(self.root / "config", ignore_errors=True)
        (self.root / "config").mkdir(parents=True)
        (self.root / "db").mkdir(exist_ok=True)
        tls_files = None
        if self.tls:
            (self.root / "pki").mkdir(exist_ok=True)
            ca, _made = ensure_ca(
                self.root / "pki" / "ca.crt", self.root / "pki" / "ca.key", "slapd", ["127.0.0.1"]
            )
            cert, key = self.root / "pki" / "slapd.crt", self.root / "pki" / "slapd.key"
            ensure_leaf(ca, "127.0.0.1", cert, key)
            self.ca_file = self.root / "pki" / "ca.crt"
            tls_files = (self.ca_file, cert, key)
        ldif = self.root / "config.ldif"
        ldif.write_text(
            _config_ldif(self.root, self.size_limit, self.paged_total, tls_files, self.syncprov)
        )
        subprocess.run(
            [SLAPADD, "-n0", "-F", str(self.root / "config"), "-l", str(ldif)],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        urls = self.uri + "/"
        if self.tls:
            urls += " " + self.ldaps_uri + "/"
        with (self.root / "slapd.log").open("ab") as log:
            self._process = subprocess.Popen(
                [SLAPD, "-h", urls, "-F", str(self.root / "config"), "-d", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.connection().unbind_s()
                return
            except ldap.SERVER_DOWN:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(
                        f"slapd did not start: {(self.root / 'slapd.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)

    @property
    def pid(self) -> int | None:
        """slapd's process id while it runs."""
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> Slapd:
        self._configure()
        self.start()
        try:
            self._add_base_entries()
        except BaseException:
            self.stop()
            raise
        return self

    def _add_base_entries(self) -> None:
        self.add(
            SUFFIX,
            {"objectClass": ["dcObject", "organization"], "dc": ["example"], "o": ["Example"]},
        )
        self.add(PEOPLE, {"objectClass": ["organizationalUnit"], "ou": ["people"]})
        self.add(GROUPS, {"objectClass": ["organizationalUnit"], "ou": ["groups"]})
        self.add(
            READER_DN,
            {
                "objectClass": ["organizationalRole", "simpleSecurityObject"],
                "cn": ["reader"],
                "userPassword": [READER_PASSWORD],
            },
        )

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Directory content -------------------------------------------------------

    def connection(self) -> Any:
        conn = ldap.initialize(self.uri)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        conn.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
        return conn

    def add(self, dn: str, attrs: dict[str, list[str]]) -> None:
        conn = self.connection()
        try:
            encoded = {k: [v.encode() for v in values] for k, values in attrs.items()}
            conn.add_s(dn, ldap.modlist.addModlist(encoded))
        finally:
            conn.unbind_s()

    def modify(self, dn: str, changes: list[tuple[int, str, list[str] | None]]) -> None:
        conn = self.connection()
        try:
            conn.modify_s(
                dn,
                [
                    (op, attr, None if v is None else [x.encode() for x in v])
                    for op, attr, v in changes
                ],
            )
        finally:
            conn.unbind_s()

    def delete(self, dn: str) -> None:
        conn = self.connection()
        try:
            conn.delete_s(dn)
        finally:
            conn.unbind_s()

    def add_person(self, uid: str, name: str | None = None, password: str | None = None) -> str:
        dn = f"uid={uid},{PEOPLE}"
        name = name or uid.title()
        attrs = {
            "objectClass": ["inetOrgPerson", "posixAccount"],
            "uid": [uid],
            "cn": [name],
            "sn": [name.split()[-1]],
            "mail": [f"{uid}@example.org"],
            "uidNumber": [str(10000 + zlib.crc32(uid.encode()) % 50000)],
            "gidNumber": ["10000"],
            "homeDirectory": [f"/home/{uid}"],
        }
        if password is not None:
            attrs["userPassword"] = [password]
        self.add(dn, attrs)
        return dn

    def add_group(self, cn: str, members: list[str], kind: str = "groupOfNames") -> str:
        """`members` are DNs, or uids for a posixGroup."""
        dn = f"cn={cn},{GROUPS}"
        attrs: dict[str, list[str]] = {"objectClass": [kind], "cn": [cn]}
        if kind == "groupOfNames":
            attrs["member"] = members or [""]
        elif kind == "groupOfUniqueNames":
            attrs["uniqueMember"] = members or [""]
        elif kind == "posixGroup":
            attrs["gidNumber"] = [str(20000 + zlib.crc32(cn.encode()) % 50000)]
            if members:
                attrs["memberUid"] = members
        else:
            raise ValueError(kind)
        self.add(dn, attrs)
        return dn

    def _member_attribute(self, cn: str) -> str:
        conn = self.connection()
        try:
            [(_dn, attrs)] = conn.search_s(f"cn={cn},{GROUPS}", ldap.SCOPE_BASE)
        finally:
            conn.unbind_s()
        classes = {c.decode() for c in attrs["objectClass"]}
        if "groupOfUniqueNames" in classes:
            return "uniqueMember"
        return "memberUid" if "posixGroup" in classes else "member"

    def add_member(self, cn: str, member: str) -> None:
        self.modify(f"cn={cn},{GROUPS}", [(ldap.MOD_ADD, self._member_attribute(cn), [member])])

    def remove_member(self, cn: str, member: str) -> None:
        self.modify(f"cn={cn},{GROUPS}", [(ldap.MOD_DELETE, self._member_attribute(cn), [member])])

    # For Homeport's configuration ---------------------------------------------

    def password_file(self, path: Path) -> Path:
        path.write_text(READER_PASSWORD + "\n")
        os.chmod(path, 0o600)
        return path

    def settings(self, secret: Path | None = None, **overrides: Any) -> LdapSettings:
        """Group sync's `ldap:` settings for this server, bound as the reader."""
        if secret is None:
            secret = self.password_file(self.root / "reader.secret")
        values: dict[str, Any] = {
            "uri": self.uri,
            "bind_dn": READER_DN,
            "bind_password_file": str(secret),
            "user_base": PEOPLE,
            "group_base": GROUPS,
        }
        values.update(overrides)
        return LdapSettings.model_validate(values)


class SilentServer:
    """A directory that accepts TCP connections and never answers: the kind of outage
    that makes a client without timeouts wait for ever. `with SilentServer(port):`."""

    def __init__(self, port: int | None = None) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port or 0))
        self._socket.listen(64)
        self.port: int = self._socket.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(conn)  # held open, never read or answered

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._socket.close()
        for conn in self._held:
            conn.close()
