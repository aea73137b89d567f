"""Server-side sessions of the admin website.

The browser holds only a random session ID (HttpOnly, SameSite=Strict,
Secure). Admins' Matrix access tokens stay here, in memory: a restart of the
website logs everyone out, which is the safe direction.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Login:
    """One admin login on one homeserver of the deployment."""

    user_id: str
    access_token: str


@dataclass
class Session:
    id: str
    csrf_token: str
    last_seen: float
    logins: dict[str, Login] = field(default_factory=dict)  # by homeserver name
    current: str | None = None  # the homeserver the pages are scoped to

    @property
    def authenticated(self) -> bool:
        return bool(self.logins)


class SessionStore:
    """Sessions by ID, ended after `idle_seconds` without a request."""

    def __init__(self, idle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def new(self) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            last_seen=self._clock(),
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> tuple[Session | None, Session | None]:
        """(live session, expired session) for a cookie value; the expired one is removed."""
        if not session_id:
            return None, None
        session = self._sessions.get(session_id)
        if session is None:
            return None, None
        now = self._clock()
        if now - session.last_seen > self.idle_seconds:
            del self._sessions[session_id]
            return None, session
        session.last_seen = now
        return session, None

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def expired(self) -> list[Session]:
        """Remove and return every idle session (their tokens should be logged out)."""
        now = self._clock()
        gone = [s for s in self._sessions.values() if now - s.last_seen > self.idle_seconds]
        for session in gone:
            del self._sessions[session.id]
        return gone
