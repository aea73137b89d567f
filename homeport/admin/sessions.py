"""Server-side sessions of the admin website, created at login and only then.

The browser holds only a random session ID (`__Host-` cookie: HttpOnly,
SameSite=Strict, Secure, path /). Admins' Matrix access tokens stay here, in
memory: a restart of the website logs everyone out, which is the safe
direction.

Nothing is stored before a login: the login form's CSRF token is a signed
pre-login cookie (`PreLoginTokens`), so anonymous requests, however many,
cost no memory and can push no admin out. Every way a session ends (logout,
idle, lifetime, eviction, lost admin rights) puts it on one queue whose
tokens the website logs out (`drain_ended`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_SESSIONS = 10_000
RECHECK_SECONDS = 60.0  # admin rights are confirmed with Synapse at least this often


@dataclass
class Login:
    """One admin login on one homeserver of the deployment."""

    user_id: str
    access_token: str
    checked_at: float = 0.0  # when Synapse last confirmed the admin rights (monotonic)


@dataclass
class Session:
    id: str
    csrf_token: str
    created: float
    last_seen: float
    logins: dict[str, Login] = field(default_factory=dict)  # by homeserver name
    current: str | None = None  # the homeserver the pages are scoped to
    ended_because: str = ""  # why it ended, for the login page

    @property
    def authenticated(self) -> bool:
        """Always, while it lives: a session exists only for logged-in admins."""
        return bool(self.logins)


class SessionStore:
    """Sessions by ID, least recently used first.

    A session ends after `idle_seconds` without a request, after
    `lifetime_seconds` whatever happens, and, beyond `max_sessions`, the
    least recently used goes first. Expiry looks only at the oldest
    sessions, so it costs nothing while none are idle.
    """

    def __init__(
        self,
        idle_seconds: float,
        lifetime_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.lifetime_seconds = lifetime_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._ended: list[Session] = []

    def __len__(self) -> int:
        return len(self._sessions)

    def now(self) -> float:
        return self._clock()

    def new(self, logins: dict[str, Login], current: str) -> Session:
        """A session for admins who just logged in (a new ID: a planted one never logs in)."""
        now = self._clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
            logins=logins,
            current=current,
        )
        self._sessions[session.id] = session
        while len(self._sessions) > self.max_sessions:
            self._finish(self._sessions.popitem(last=False)[1], "crowded out")
        return session

    def all(self) -> list[Session]:
        return list(self._sessions.values())

    def get(self, session_id: str | None) -> tuple[Session | None, Session | None]:
        """(live session, session that just ended) for a cookie value."""
        if not session_id:
            return None, None
        session = self._sessions.get(session_id)
        if session is None:
            return None, None
        now = self._clock()
        reason = self._over(session, now)
        if reason:
            self.end(session, reason)
            return None, session
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session, None

    def end(self, session: Session, reason: str = "logged out") -> None:
        if self._sessions.pop(session.id, None) is not None:
            self._finish(session, reason)

    def sweep(self) -> None:
        """End every idle session (the least recently used come first)."""
        now = self._clock()
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_seen <= self.idle_seconds:
                break
            self.end(oldest, "idle")

    def drain_ended(self) -> list[Session]:
        """Sessions that ended since the last call: their tokens must be logged out."""
        ended, self._ended = self._ended, []
        return ended

    def _over(self, session: Session, now: float) -> str:
        if now - session.last_seen > self.idle_seconds:
            return "idle"
        if now - session.created > self.lifetime_seconds:
            return "lifetime"
        return ""

    def _finish(self, session: Session, reason: str) -> None:
        session.ended_because = reason
        self._ended.append(session)


class PreLoginTokens:
    """CSRF tokens for the login form without server state: a nonce and its HMAC.

    The cookie holds `nonce.signature`, the form the nonce; the key lives in
    the website's memory, so a restart only makes an open login form ask again.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._sign(nonce)}"

    def token_of(self, cookie: str | None) -> str | None:
        """The CSRF token a genuine cookie carries; None for a missing or forged one."""
        if not cookie or cookie.count(".") != 1:
            return None
        nonce, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(nonce)):
            return None
        return nonce
