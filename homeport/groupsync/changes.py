"""Knowing within seconds that the directory changed: syncrepl, or a modifyTimestamp poll.

A daemon thread follows the people and group subtrees and calls `on_change`
with the DNs that changed, collected for a moment so that a burst of edits is
one call. An empty set means "anything may have changed, read it all again":
it comes once the watch is live again after the connection was lost. Supported:

- OpenLDAP's syncrepl (RFC 4533, `refreshAndPersist`, served by the
  `syncprov` overlay): changes arrive as they are committed, deletions
  included. The initial refresh is not reported: the caller reads the
  directory itself.
- Elsewhere, Active Directory included, a poll every two seconds for entries
  whose `modifyTimestamp` moved (compared with the server's own timestamps,
  so clock skew does not lose changes). A poll cannot see a deletion: a
  deleted person leaves their groups, which the full reconcile catches.

Active Directory's DirSync control is not used: it needs replication rights
that the poll does not, and the poll covers AD.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import ldap
import ldap.ldapobject
from ldap.syncrepl import SyncreplConsumer

from homeport.config.groupsync import LdapSettings
from homeport.directory.ldap_connection import DirectoryUnavailable, connect, describe
from homeport.directory.ldap_reader import paged_search
from homeport.directory.model import normal_dn

logger = logging.getLogger("homeport.groupsync")

POLL_SECONDS = 2.0
DEBOUNCE_SECONDS = 0.2
WAIT_SECONDS = 0.5  # longest block on the server, so that stop() is quick
STOP_SECONDS = 2.0
RECONNECT_BACKOFF = (1.0, 2.0, 5.0, 10.0)
DRAIN_BATCH = 1000  # messages read from one consumer before the others get a turn
# The first poll looks this far back (by our clock) to learn the server's own time.
SKEW_MARGIN = timedelta(hours=1)
# What tells two versions of an entry apart: OpenLDAP's entryCSN and AD's
# uSNChanged change on every write, modifyTimestamp only once a second.
VERSION_ATTRIBUTES = ["modifyTimestamp", "entryCSN", "uSNChanged"]
# The server does not offer syncrepl, or not to us. A size limit that applies
# to the reader cuts the initial refresh short: exempt the bind DN (slapd:
# `olcLimits: dn.exact="<bind_dn>" size=unlimited`) to get syncrepl.
REFUSED_SYNC = (
    ldap.UNAVAILABLE_CRITICAL_EXTENSION,
    ldap.PROTOCOL_ERROR,
    ldap.UNWILLING_TO_PERFORM,
    ldap.OPERATIONS_ERROR,
    ldap.SIZELIMIT_EXCEEDED,
    ldap.ADMINLIMIT_EXCEEDED,
)


class _Consumer(ldap.ldapobject.SimpleLDAPObject, SyncreplConsumer):  # type: ignore[misc]
    """A syncrepl consumer that reports what changed once the initial refresh is done."""

    def __init__(self, uri: str, *, report: Callable[[str], None]) -> None:
        super().__init__(uri)
        self._report = report
        self._cookie: str | None = None
        self.refreshed = False
        self._dns: dict[str, str] = {}  # entryUUID -> DN: deletions come as UUIDs only

    def syncrepl_get_cookie(self) -> str | None:
        return self._cookie

    def syncrepl_set_cookie(self, cookie: str) -> None:
        self._cookie = cookie

    def syncrepl_entry(self, dn: str, attributes: Any, uuid: str) -> None:
        moved_from = self._dns.get(uuid)
        self._dns[uuid] = dn
        if self.refreshed:
            self._report(dn)
            if moved_from is not None and moved_from != dn:
                self._report(moved_from)  # a rename: the old DN is gone

    def syncrepl_delete(self, uuids: list[str]) -> None:
        for uuid in uuids:
            dn = self._dns.pop(uuid, "")  # unknown: "" asks for a full re-read
            if self.refreshed:
                self._report(dn)

    def syncrepl_present(self, uuids: list[str] | None, refreshDeletes: bool = False) -> None:
        return None  # uuids=None marks the end of a refresh phase: refreshdone follows

    def syncrepl_refreshdone(self) -> None:
        self.refreshed = True


def _keepalive(conn: Any) -> Any:
    """A watch holds its connection for days: notice a silently dead peer in a minute."""
    conn.set_option(ldap.OPT_X_KEEPALIVE_IDLE, 30)
    conn.set_option(ldap.OPT_X_KEEPALIVE_PROBES, 3)
    conn.set_option(ldap.OPT_X_KEEPALIVE_INTERVAL, 10)
    return conn


def _drain(consumer: _Consumer, wait: float) -> None:
    """Handle what the server sent, waiting up to `wait` for the first message."""
    timeout = wait
    for _ in range(DRAIN_BATCH):
        try:
            if not consumer.syncrepl_poll(all=0, timeout=timeout):
                raise DirectoryUnavailable("the directory ended the syncrepl search")
        except ldap.TIMEOUT:
            return
        timeout = 0.01


def watched_bases(settings: LdapSettings) -> list[str]:
    """One subtree when one base holds the other, else both."""
    people, groups = normal_dn(settings.user_base), normal_dn(settings.group_base)
    if people == groups or people.endswith("," + groups):
        return [settings.group_base]
    if groups.endswith("," + people):
        return [settings.user_base]
    return [settings.user_base, settings.group_base]


Version = tuple[str, str]  # (DN, what its version attributes said)


def advance(since: str, found: list[Version]) -> tuple[str, frozenset[Version]]:
    """The next poll's lower bound (the newest modifyTimestamp seen, in the server's
    own format and clock) and the versions already seen at that second, not to be
    reported again."""
    stamps = [version.split("|", 1)[0] for _dn, version in found]
    latest = max(stamps, default=since)
    return latest, frozenset(
        item for item, stamp in zip(found, stamps, strict=True) if stamp == latest
    )


def _generalized(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%SZ")


def _version(attrs: dict[str, list[bytes]]) -> str:
    by_name = {key.lower(): values for key, values in attrs.items()}
    parts = [by_name.get(name.lower(), [b""])[0] for name in VERSION_ATTRIBUTES]
    return "|".join(part.decode("ascii", errors="replace") for part in parts)


def _reason(error: Exception) -> str:
    """What to tell the caller about an interruption: never a password."""
    if isinstance(error, DirectoryUnavailable):
        return str(error)
    if isinstance(error, ldap.LDAPError):
        return f"lost the directory: {describe(error)}"
    return f"the directory watch failed: {type(error).__name__}: {error}"


class DirectoryWatch:
    """Follows the directory in a daemon thread and reports changed DNs (see module).

    `on_change` and `on_error` are called from that thread. `mode` says how it
    follows: "starting", "syncrepl", "poll" or "reconnecting"."""

    def __init__(
        self,
        settings: LdapSettings,
        on_change: Callable[[frozenset[str]], None],
        on_error: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self._on_change = on_change
        self._on_error = on_error
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._pending_since: float | None = None
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._lost = False  # the connection was lost: report a re-read once live again
        self.mode = "starting"

    def start(self) -> None:
        # In the caller's context: where several services share a process, the watch's
        # log records still go to group sync's log (`homeport.logs.SERVICE`).
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="directory-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; returns within STOP_SECONDS (the thread is a daemon)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_SECONDS)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # Collecting and reporting ----------------------------------------------------

    def _report(self, dn: str) -> None:
        with self._lock:
            self._pending.add(dn)
            if self._pending_since is None:
                self._pending_since = time.monotonic()

    def _flush(self, force: bool = False) -> None:
        """One call for everything collected, once it has settled for a moment."""
        with self._lock:
            since = self._pending_since
            if since is None or (not force and time.monotonic() - since < DEBOUNCE_SECONDS):
                return
            pending = frozenset(self._pending)
            self._pending.clear()
            self._pending_since = None
        self._call(self._on_change, frozenset() if "" in pending else pending)

    def _call(self, callback: Callable[[Any], None], value: object) -> None:
        """A failing callback is logged; it must not end the watch."""
        try:
            callback(value)
        except Exception:
            logger.exception("a directory watch callback failed")

    def _live(self, mode: str) -> None:
        """Following again: reset the backoff, and ask for a re-read after an outage."""
        self.mode = mode
        self._failures = 0
        if self._lost:
            self._lost = False
            self._report("")
            self._flush(force=True)

    # The thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as error:
                if self._stop.is_set():
                    return
                if not isinstance(error, ldap.LDAPError | DirectoryUnavailable):
                    logger.exception("the directory watch failed")
                self._lost = True
                self.mode = "reconnecting"
                self._call(self._on_error, _reason(error))
                delay = RECONNECT_BACKOFF[min(self._failures, len(RECONNECT_BACKOFF) - 1)]
                self._failures += 1
                self._stop.wait(delay)

    def _follow(self) -> None:
        """Follow with syncrepl; poll instead if the server refuses it. Returns on stop."""
        try:
            self._syncrepl()
        except REFUSED_SYNC as error:
            logger.warning(
                "syncrepl unavailable; polling modifyTimestamp instead",
                extra={"why": describe(error)},
            )
            if self.mode == "syncrepl":
                self._lost = True  # refused mid-way: what happened meanwhile is unknown
            self._poll()

    def _syncrepl(self) -> None:
        consumers: list[_Consumer] = []
        try:
            for base in watched_bases(self.settings):
                consumer = connect(
                    self.settings, lambda uri: _keepalive(_Consumer(uri, report=self._report))
                )
                consumers.append(consumer)
                consumer.syncrepl_search(
                    base,
                    ldap.SCOPE_SUBTREE,
                    mode="refreshAndPersist",
                    filterstr="(objectClass=*)",
                    attrlist=["1.1"],  # DNs and UUIDs are all we need
                )
            while not self._stop.is_set():
                for consumer in consumers:
                    _drain(consumer, WAIT_SECONDS / len(consumers))
                if self.mode != "syncrepl" and all(c.refreshed for c in consumers):
                    self._live("syncrepl")
                self._flush()
        finally:
            for consumer in consumers:
                with contextlib.suppress(ldap.LDAPError):
                    consumer.unbind_s()

    def _changed_since(self, conn: Any, since: str) -> list[Version]:
        found: list[Version] = []
        for base in watched_bases(self.settings):
            entries = paged_search(
                conn,
                base,
                f"(modifyTimestamp>={since})",
                VERSION_ATTRIBUTES,
                self.settings.page_size,
            )
            found += [(dn, _version(attrs)) for dn, attrs in entries]
        return found

    def _poll(self) -> None:
        conn = connect(self.settings, lambda uri: _keepalive(ldap.initialize(uri)))
        try:
            start = _generalized(datetime.now(UTC) - SKEW_MARGIN)
            since, seen = advance(start, self._changed_since(conn, start))
            self._live("poll")
            while not self._stop.wait(POLL_SECONDS):
                found = self._changed_since(conn, since)
                for dn, version in found:
                    if (dn, version) not in seen:
                        self._report(dn)
                since, seen = advance(since, found)
                self._flush(force=True)
        finally:
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()
