"""Console logins: one-time login codes and the sessions they open, in the agent's memory.

A code is made for an operator who holds the control API's token (`provsync console`),
is good for one use within ``CODE_TTL`` seconds, and opens a session: a random id in an
HttpOnly, SameSite=Strict cookie, with its own CSRF token for the forms. Both tables are
bounded (the oldest entries go first), so nobody, logged in or not, can grow them; a
restart of the agent logs every browser out.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

CODE_TTL = 300.0
"""Seconds a login link stays good."""
SESSION_IDLE = 12 * 3600.0
"""Seconds a session lasts without a request."""
MAX_CODES = 64
MAX_SESSIONS = 256


@dataclass
class Session:
    csrf: str
    seen: float
    read_only: bool = False
    """A viewer's session (a NOC screen): it shows every page and changes nothing."""


class ConsoleSessions:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        # code -> (expires at, read-only)
        self._codes: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def new_code(self, read_only: bool = False) -> str:
        """A login code, good once within CODE_TTL seconds; ``read_only``: the session
        it opens can only look."""
        code = secrets.token_urlsafe(32)
        self._codes[code] = (self._now() + CODE_TTL, read_only)
        while len(self._codes) > MAX_CODES:
            self._codes.popitem(last=False)
        return code

    def valid(self, code: str) -> bool:
        """Whether ``code`` is good now, without using it up (the login page asks)."""
        found = self._codes.get(code)
        return found is not None and found[0] >= self._now()

    def redeem(self, code: str) -> str | None:
        """The id of a new session for a good code (which is used up), else None."""
        found = self._codes.pop(code, None)
        if found is None or found[0] < self._now():
            return None
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = Session(secrets.token_urlsafe(24), self._now(), found[1])
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id (its idle time restarts), else None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.seen + SESSION_IDLE < self._now():
            del self._sessions[session_id]
            return None
        session.seen = self._now()
        self._sessions.move_to_end(session_id)
        return session

    def alive(self, session_id: str | None) -> bool:
        """Whether that session still lives, without counting this as its use (an open
        page's stream asks; only what the browser does keeps a session going)."""
        session = self._sessions.get(session_id or "")
        return session is not None and session.seen + SESSION_IDLE >= self._now()

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    @staticmethod
    def csrf_ok(session: Session, token: str | None) -> bool:
        return token is not None and secrets.compare_digest(session.csrf, token)
