"""A real Active Directory for tests: Debian's Samba as a domain controller.

Provisioning (`samba-tool domain provision`) and the bulk accounts are made
once and kept as a template in the cache folder, keyed by a hash of the
recipe and Samba's version; each DC copies it (the database holds no
absolute path) and writes its own smb.conf. Only the LDAP service runs.

Samba's LDAP ports are fixed (389, 636, 3268, 3269) and it binds only
addresses an interface holds, so each DC claims a loopback address of its
own (127.0.0.7, 127.0.0.8, ...: a lock file per address, held while the DC
runs), adds it to `lo` and removes it after: two xdist workers, or two test
sessions, each get theirs. Simple binds over plain ldap:// are refused (as
on Windows), so the DC serves LDAPS and StartTLS with a certificate for its
address from a CA the test makes (homeport.pki). Samba runs with `-i`: it
ends when its stdin closes, so even a killed pytest leaves no DC behind.

Root is needed (the address on `lo`, ports below 1024); scripts/test
installs Debian's samba. The domain has no password complexity rule.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import ldap
import ldap.dn
import ldap.modlist
import psutil
import pytest

from homeport.config.groupsync import LdapSettings
from homeport.pki import ensure_ca, ensure_leaf

SAMBA = "/usr/sbin/samba"
SAMBA_TOOL = "/usr/bin/samba-tool"
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-samba is the system Python's, not the venv's
SEED = Path(__file__).with_name("samba_seed.py")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "homeport-tests/samba"
ADDRESSES = tuple(f"127.0.0.{n}" for n in range(7, 23))

REALM = "HOMEPORT.TEST"
DOMAIN = "HOMEPORT"
BASE_DN = "DC=homeport,DC=test"
PEOPLE = f"OU=People,{BASE_DN}"
GROUPS = f"OU=Groups,{BASE_DN}"
SERVICES = f"OU=Services,{BASE_DN}"
BULK = f"OU=Bulk,{BASE_DN}"
BULK_GROUP = f"CN=bulk,{BULK}"
BULK_MEMBERS = 1600  # past Windows' MaxValRange (1,500)
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE_DN}"
ADMIN_PASSWORD = "Samba-Admin-Test-1"
# Group sync binds as an ordinary domain user, as it would in production.
READER = "homeport-reader"
READER_DN = f"CN={READER},{SERVICES}"
READER_PASSWORD = "Samba-Reader-Test-1"

# userAccountControl bits
ACCOUNTDISABLE = 0x2
PASSWD_NOTREQD = 0x20
NORMAL_ACCOUNT = 0x200

PROVISION = (
    "domain",
    "provision",
    "--server-role=dc",
    "--dns-backend=NONE",
    "--use-rfc2307",
    f"--realm={REALM}",
    f"--domain={DOMAIN}",
    "--host-name=dc",
    f"--adminpass={ADMIN_PASSWORD}",
)
SEED_SPEC = {
    "ous": ["People", "Groups", "Services", "Bulk"],
    "bulk_ou": "Bulk",
    "bulk_prefix": "bulk",
    "bulk_group": "bulk",
    "bulk_members": BULK_MEMBERS,
    "reader": [READER, READER_PASSWORD, "Services"],
}
PORTS = {"ldap": 389, "ldaps": 636, "gc": 3268, "gc_tls": 3269}


# The template --------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def template() -> Path:
    """The provisioned, seeded domain for this recipe and Samba version; made on first use."""
    for tool in (SAMBA, SAMBA_TOOL, SYSTEM_PYTHON):
        if not Path(tool).exists():
            raise AssertionError(f"{tool} is missing: install Debian's samba (scripts/test does)")
    version = subprocess.run([SAMBA, "--version"], capture_output=True, text=True, check=True)
    recipe = json.dumps(
        [version.stdout.strip(), PROVISION, SEED_SPEC, SEED.read_text()], sort_keys=True
    )
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    final = CACHE / f"template-{key}"
    if final.is_dir():
        return final
    with _locked(CACHE / "template.lock"):
        if final.is_dir():  # another worker made it while this one waited
            return final
        building = CACHE / f"building-{key}"
        shutil.rmtree(building, ignore_errors=True)
        empty = CACHE / "empty.conf"  # not /etc/samba/smb.conf: nothing of the machine's
        empty.write_text("")
        _run(
            [SAMBA_TOOL, *PROVISION, f"--targetdir={building}", f"--configfile={empty}"],
            "samba-tool domain provision",
        )
        conf = building / "etc" / "smb.conf"
        _run([SYSTEM_PYTHON, str(SEED), str(conf), json.dumps(SEED_SPEC)], "seeding the domain")
        conf.unlink()  # it names `building`; each DC writes its own
        (building / "recipe.json").write_text(recipe)
        for old in CACHE.glob("template-*"):
            shutil.rmtree(old, ignore_errors=True)
        building.rename(final)
    return final


# The domain controller -----------------------------------------------------------


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _on_lo(address: str) -> bool:
    shown = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True
    )
    return f" {address}/32 " in shown.stdout


def _smb_conf(data: Path, host: str, pki: Path) -> str:
    run = data / "run"
    lines = {
        "netbios name": "DC",
        "realm": REALM,
        "workgroup": DOMAIN,
        "server role": "active directory domain controller",
        "server services": "ldap",
        "interfaces": host,
        "bind interfaces only": "yes",
        "private dir": data / "private",
        "lock directory": data,
        "state directory": data / "state",
        "cache directory": data / "cache",
        "binddns dir": data / "bind-dns",
        "pid directory": run,
        "ncalrpc dir": run / "ncalrpc",
        "winbindd socket directory": run / "winbindd",
        "ntp signd socket directory": run / "ntp_signd",
        "log file": data / "samba.log",
        "idmap_ldb:use rfc2307": "yes",
        "tls enabled": "yes",
        "tls certfile": pki / "dc.crt",
        "tls keyfile": pki / "dc.key",
        "tls cafile": pki / "ca.crt",
    }
    return "[global]\n" + "".join(f"\t{key} = {value}\n" for key, value in lines.items())


class SambaDC:
    """An Active Directory domain controller for the block's duration.

    `host` is its own loopback address; `uri` (LDAPS) and `start_tls_uri`
    (ldap://, for StartTLS) reach it with `ca_file` as the trust anchor. Group
    sync binds as `bind_dn` (an ordinary domain user) with the password that
    `password_file()` writes; the helpers change the domain as its
    Administrator. OUs: `PEOPLE`, `GROUPS`, `SERVICES`, and `BULK` with the
    group `BULK_GROUP` of `BULK_MEMBERS` enabled accounts (bulk0000, ...).
    """

    realm = REALM
    domain = DOMAIN
    base_dn = BASE_DN
    people = PEOPLE
    groups = GROUPS
    bind_dn = READER_DN
    password = READER_PASSWORD
    admin_dn = ADMIN_DN
    admin_password = ADMIN_PASSWORD
    ports = PORTS

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "dc"
        self.pki = root / "pki"
        self.ca_file = self.pki / "ca.crt"
        self.host = ""
        self._lock: IO[str] | None = None
        self._added_address = False
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: Any = None

    @property
    def uri(self) -> str:
        return f"ldaps://{self.host}"

    @property
    def start_tls_uri(self) -> str:
        return f"ldap://{self.host}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    # Life cycle --------------------------------------------------------------

    def __enter__(self) -> SambaDC:
        if os.geteuid() != 0:
            raise AssertionError("Samba's domain controller needs root (ports 389/636, lo)")
        source = template()
        try:
            self._claim_address()
            shutil.copytree(source, self.data, symlinks=True)
            for folder in ("run", "cache"):
                (self.data / folder).mkdir(exist_ok=True)
            self._issue_certificate()
            conf = self.data / "smb.conf"
            conf.write_text(_smb_conf(self.data, self.host, self.pki))
            self._start(conf)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _claim_address(self) -> None:
        """The first test address no other DC holds: its lock, then on `lo`."""
        CACHE.mkdir(parents=True, exist_ok=True)
        for address in ADDRESSES:
            handle = (CACHE / f"address-{address}.lock").open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            if any(_answers(address, port) for port in (PORTS["ldap"], PORTS["ldaps"])):
                handle.close()  # something else serves there: leave it alone
                continue
            self._lock, self.host = handle, address
            if not _on_lo(address):
                subprocess.run(
                    ["ip", "addr", "add", f"{address}/32", "dev", "lo"],
                    check=True,
                    capture_output=True,
                )
                self._added_address = True
            return
        raise AssertionError(f"every test address for Samba is taken: {', '.join(ADDRESSES)}")

    def _issue_certificate(self) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        ca, _made = ensure_ca(self.ca_file, self.pki / "ca.key", "samba", [self.host])
        ensure_leaf(ca, self.host, self.pki / "dc.crt", self.pki / "dc.key")

    def _start(self, conf: Path) -> None:
        with (self.data / "samba.out").open("ab") as log:
            self._process = subprocess.Popen(
                [SAMBA, "--interactive", "--model=single", f"--configfile={conf}"],
                stdin=subprocess.PIPE,  # closed (or pytest gone): Samba ends
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.connection()
                return
            except ldap.LDAPError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    output = (self.data / "samba.out").read_text(errors="replace")
                    raise AssertionError(f"samba did not start:\n{output[-3000:]}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Samba gone, the address off `lo`, its lock released; safe to call twice."""
        if self._admin is not None:
            with contextlib.suppress(ldap.LDAPError):
                self._admin.unbind_s()
            self._admin = None
        if self._process is not None:
            children: list[psutil.Process] = []
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(self._process.pid).children(recursive=True)
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            self._process = None
        if self._added_address:
            subprocess.run(
                ["ip", "addr", "del", f"{self.host}/32", "dev", "lo"],
                check=False,
                capture_output=True,
            )
            self._added_address = False
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # The domain's content ----------------------------------------------------

    def connect(self, dn: str, password: str, uri: str | None = None) -> Any:
        """A connection bound as `dn`, over LDAPS (or StartTLS for an ldap:// `uri`)
        with the certificate verified against `ca_file`."""
        uri = uri or self.uri
        conn = ldap.initialize(uri)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(self.ca_file))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        try:
            if uri.startswith("ldap://"):
                conn.start_tls_s()
            conn.simple_bind_s(dn, password)
        except ldap.LDAPError:
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()
            raise
        return conn

    def connection(self) -> Any:
        """The Administrator's connection, kept open for the helpers."""
        if self._admin is None:
            self._admin = self.connect(ADMIN_DN, ADMIN_PASSWORD)
        return self._admin

    def add(self, dn: str, attrs: dict[str, list[bytes]]) -> str:
        self.connection().add_s(dn, ldap.modlist.addModlist(attrs))
        return dn

    def modify(self, dn: str, changes: list[tuple[int, str, list[bytes] | None]]) -> None:
        self.connection().modify_s(dn, changes)

    def delete(self, dn: str) -> None:
        self.connection().delete_s(dn)

    def add_user(
        self,
        name: str,
        *,
        display_name: str | None = None,
        password: str | None = None,
        email: str | None = None,
        disabled: bool = False,
        ou: str = PEOPLE,
    ) -> str:
        """A user account `name` (sAMAccountName; name@homeport.test its principal name)
        at CN=<display name>; without a password it needs none. Returns its DN."""
        cn = display_name or name
        control = NORMAL_ACCOUNT | (0 if password else PASSWD_NOTREQD)
        control |= ACCOUNTDISABLE if disabled else 0
        attrs = {
            "objectClass": [b"user"],
            "sAMAccountName": [name.encode()],
            "userPrincipalName": [f"{name}@{REALM.lower()}".encode()],
            "displayName": [cn.encode()],
            "mail": [(email or f"{name}@{REALM.lower()}").encode()],
            "userAccountControl": [str(control).encode()],
        }
        if password is not None:
            attrs["unicodePwd"] = [_unicode_pwd(password)]
        return self.add(f"CN={ldap.dn.escape_dn_chars(cn)},{ou}", attrs)

    def add_group(self, name: str, members: Iterable[str] = (), *, ou: str = GROUPS) -> str:
        """A global security group `name` with these member DNs (people or groups)."""
        attrs = {"objectClass": [b"group"], "sAMAccountName": [name.encode()]}
        encoded = [member.encode() for member in members]
        if encoded:
            attrs["member"] = encoded
        return self.add(f"CN={ldap.dn.escape_dn_chars(name)},{ou}", attrs)

    def add_member(self, group: str, member: str) -> None:
        self.modify(group, [(ldap.MOD_ADD, "member", [member.encode()])])

    def remove_member(self, group: str, member: str) -> None:
        self.modify(group, [(ldap.MOD_DELETE, "member", [member.encode()])])

    def _control(self, dn: str) -> int:
        [(_dn, attrs)] = self.connection().search_s(
            dn, ldap.SCOPE_BASE, "(objectClass=*)", ["userAccountControl"]
        )
        return int(attrs["userAccountControl"][0])

    def set_disabled(self, dn: str, disabled: bool = True) -> None:
        """Disable (or enable again) an account: userAccountControl's bit 2."""
        control = self._control(dn)
        control = control | ACCOUNTDISABLE if disabled else control & ~ACCOUNTDISABLE
        self.modify(dn, [(ldap.MOD_REPLACE, "userAccountControl", [str(control).encode()])])

    def set_password(self, dn: str, password: str) -> None:
        """An administrator's reset, as Active Directory Users and Computers does it."""
        self.modify(dn, [(ldap.MOD_REPLACE, "unicodePwd", [_unicode_pwd(password)])])

    # For Homeport's configuration --------------------------------------------

    def password_file(self, path: Path) -> Path:
        path.write_text(READER_PASSWORD + "\n")
        path.chmod(0o600)
        return path

    def settings(self, secret: Path | None = None, **overrides: Any) -> LdapSettings:
        """Group sync's `ldap:` settings for this DC: LDAPS verified against the
        test CA, bound as the reader, people in OU=People, groups in OU=Groups."""
        if secret is None:
            secret = self.password_file(self.root / "reader.secret")
        values: dict[str, Any] = {
            "uri": self.uri,
            "ca_file": str(self.ca_file),
            "bind_dn": READER_DN,
            "bind_password_file": str(secret),
            "user_base": PEOPLE,
            "group_base": GROUPS,
            "active_directory": True,
        }
        values.update(overrides)
        return LdapSettings.model_validate(values)


def _unicode_pwd(password: str) -> bytes:
    """AD takes a password as `unicodePwd`: quoted, UTF-16-LE, over an encrypted link."""
    return f'"{password}"'.encode("utf-16-le")


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    """One domain controller per test process (xdist worker), for every module that
    registers this fixture (`from tests.samba_server import samba_dc` in a conftest)."""
    with SambaDC(tmp_path_factory.mktemp("samba")) as dc:
        yield dc
