"""Server-side sessions of the admin website.

The browser holds only a random session ID (HttpOnly, SameSite=Strict,
Secure). Admins' Matrix access tokens stay here, in memory: a restart of the
website logs everyone out, which is the safe direction.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_SESSIONS = 10_000


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
    """Sessions by ID, least recently used first, ended after `idle_seconds` without a request.

    Bounded: beyond `max_sessions` the least recently used session goes first,
    so a flood of anonymous visitors cannot exhaust memory; expiry looks only
    at the oldest sessions, so it costs nothing while none are idle.
    """

    def __init__(
        self,
        idle_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def new(self) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            last_seen=self._clock(),
        )
        self._sessions[session.id] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return session

    def all(self) -> list[Session]:
        return list(self._sessions.values())

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
        self._sessions.move_to_end(session_id)
        return session, None

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def expired(self) -> list[Session]:
        """Remove and return every idle session (their tokens should be logged out)."""
        now = self._clock()
        gone = []
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_seen <= self.idle_seconds:
                break
            gone.append(self._sessions.popitem(last=False)[1])
        return gone
