"""Knowing within seconds that the directory changed: syncrepl, or a modifyTimestamp poll.

A daemon thread follows the people and group subtrees and calls `on_change`
with the DNs that changed (debounced); an empty set means "anything may have
changed" (after a reconnect). Supported:

- OpenLDAP's syncrepl (RFC 4533, `refreshAndPersist`, the `syncprov`
  overlay): changes arrive as they are committed;
- elsewhere, Active Directory included, a poll every two seconds on
  `modifyTimestamp` (AD's DirSync is not used: it needs replication rights
  the poll does not).

Deletions that no group edit accompanies are caught by the full reconcile.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ldap
import ldap.ldapobject
from ldap.syncrepl import SyncreplConsumer

from homeport.config.groupsync import LdapSettings
from homeport.groupsync.ldap_reader import DirectoryUnavailable, connect, paged_search

logger = logging.getLogger("homeport.groupsync")

POLL_SECONDS = 2.0
DEBOUNCE_SECONDS = 0.2
RECONNECT_BACKOFF = (1.0, 2.0, 5.0, 10.0)
# The server does not offer syncrepl, or not to us: a size limit that applies to
# the reader cuts the initial refresh short (exempt it, e.g. with slapd's
# `olcLimits: dn.exact="<bind_dn>" size=unlimited`, to get syncrepl).
REFUSED_SYNC = (
    ldap.UNAVAILABLE_CRITICAL_EXTENSION,
    ldap.PROTOCOL_ERROR,
    ldap.UNWILLING_TO_PERFORM,
    ldap.OPERATIONS_ERROR,
    ldap.SIZELIMIT_EXCEEDED,
    ldap.ADMINLIMIT_EXCEEDED,
)


class _Consumer(ldap.ldapobject.SimpleLDAPObject, SyncreplConsumer):  # type: ignore[misc]
    """A syncrepl consumer that reports what changed after the initial refresh."""

    def __init__(self, *args: Any, report: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._report = report
        self._cookie: str | None = None
        self.refreshed = False
        self._dns: dict[str, str] = {}  # entryUUID -> DN, to name deleted entries

    def syncrepl_get_cookie(self) -> str | None:
        return self._cookie

    def syncrepl_set_cookie(self, cookie: str) -> None:
        self._cookie = cookie

    def syncrepl_entry(self, dn: str, attributes: Any, uuid: str) -> None:
        self._dns[uuid] = dn
        if self.refreshed:
            self._report(dn)

    def syncrepl_delete(self, uuids: list[str]) -> None:
        for uuid in uuids:
            dn = self._dns.pop(uuid, "")
            if self.refreshed:
                self._report(dn)

    def syncrepl_present(self, uuids: list[str] | None, refreshDeletes: bool = False) -> None:
        return None

    def syncrepl_refreshdone(self) -> None:
        self.refreshed = True


def _common_bases(settings: LdapSettings) -> list[str]:
    """One subtree when one base holds the other, else both."""
    people, groups = settings.user_base.lower(), settings.group_base.lower()
    if people.endswith(groups):
        return [settings.group_base]
    if groups.endswith(people):
        return [settings.user_base]
    return [settings.user_base, settings.group_base]


class DirectoryWatch:
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
        self.mode = "starting"  # "syncrepl", "poll", or "reconnecting"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="directory-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # Collecting changes -------------------------------------------------------

    def _report(self, dn: str) -> None:
        with self._lock:
            self._pending.add(dn)
            if self._pending_since is None:
                self._pending_since = time.monotonic()

    def _flush(self, force: bool = False) -> None:
        with self._lock:
            since = self._pending_since
            if since is None:
                return
            if not force and time.monotonic() - since < DEBOUNCE_SECONDS:
                return
            changed = frozenset(dn for dn in self._pending if dn)
            anything = "" in self._pending
            self._pending.clear()
            self._pending_since = None
        self._on_change(frozenset() if anything else changed)

    # The thread ---------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        first = True
        while not self._stop.is_set():
            try:
                if not first:
                    self._report("")  # reconnected: anything may have changed meanwhile
                    self._flush(force=True)
                first = False
                self._follow()
                failures = 0
            except (ldap.LDAPError, DirectoryUnavailable) as error:
                if self._stop.is_set():
                    return
                reason = str(error) if isinstance(error, DirectoryUnavailable) else _text(error)
                self.mode = "reconnecting"
                self._on_error(reason)
                delay = RECONNECT_BACKOFF[min(failures, len(RECONNECT_BACKOFF) - 1)]
                failures += 1
                self._stop.wait(delay)

    def _follow(self) -> None:
        """Follow with syncrepl; fall back to polling if the server refuses it."""
        try:
            self._syncrepl()
        except REFUSED_SYNC as error:
            logger.warning(
                "syncrepl unavailable; polling modifyTimestamp instead",
                extra={"why": _text(error)},
            )
            self._poll()

    def _syncrepl(self) -> None:
        consumers = []
        try:
            for base in _common_bases(self.settings):
                consumer = connect(self.settings, lambda uri: _Consumer(uri, report=self._report))
                consumers.append(consumer)
                consumer.syncrepl_search(
                    base, ldap.SCOPE_SUBTREE, mode="refreshAndPersist", filterstr="(objectClass=*)"
                )
            self.mode = "syncrepl"
            while not self._stop.is_set():
                for consumer in consumers:
                    with contextlib.suppress(ldap.TIMEOUT):
                        consumer.syncrepl_poll(all=0, timeout=0.5 / len(consumers))
                self._flush()
        finally:
            for consumer in consumers:
                with contextlib.suppress(ldap.LDAPError):
                    consumer.unbind_s()

    def _poll(self) -> None:
        self.mode = "poll"
        since = _generalized(datetime.now(UTC))
        while not self._stop.wait(POLL_SECONDS):
            now = _generalized(datetime.now(UTC))
            conn = connect(self.settings)
            try:
                for base in _common_bases(self.settings):
                    for dn, _attrs in paged_search(
                        conn,
                        base,
                        f"(modifyTimestamp>={since})",
                        ["1.1"],
                        self.settings.page_size,
                    ):
                        self._report(dn)
            finally:
                conn.unbind_s()
            since = now
            self._flush(force=True)


def _generalized(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%SZ")


def _text(error: ldap.LDAPError) -> str:
    info = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    return str(info.get("desc", type(error).__name__))
