"""The advisory lock that makes one agent the owner of a PostgreSQL store.

A session-level advisory lock held on a dedicated connection (never the store engine's
pool), with bounded waits: timeouts on connecting, on each statement and on
unacknowledged TCP data (:func:`keepalive_args`), and :meth:`ServerLock.abort` for a
server that answers none of them. The server frees the lock when that session ends, so
a dropped connection means the lock may already belong to another agent
(agent.store.ownership watches for that).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import zlib
from typing import Any

import psycopg
from sqlalchemy.engine import URL

LOCK_KEY = zlib.crc32(b"provsync-store-owner")
OWNER_KEY = "owner"


def failure_reason(exc: BaseException) -> str:
    # libpq messages name host and port, never the password; one line is enough.
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


def keepalive_args(timeout: float) -> dict[str, int]:
    """libpq settings that bound how long a dead peer goes unnoticed to about ``timeout``."""
    seconds = max(1, math.ceil(timeout))
    return {
        # libpq treats connect_timeout below 2 as 2.
        "connect_timeout": max(2, seconds),
        "keepalives": 1,
        "keepalives_idle": seconds,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": int(timeout * 1000),
    }


class ServerLock:
    """The advisory lock, on a connection of its own with bounded waits."""

    def __init__(self, url: URL, timeout: float) -> None:
        args: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
        for key, value in url.query.items():
            args[key] = value if isinstance(value, str) else value[-1]
        args.update(keepalive_args(timeout))
        args["application_name"] = "provsync-owner"
        self._args = args
        self.timeout = timeout
        self._timeout_ms = int(timeout * 1000)
        self._conn: psycopg.Connection[Any] | None = None
        # abort() runs on the watchdog's thread: it must never shut down a descriptor
        # that close() freed meanwhile (and the kernel gave to another socket).
        self._closing = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def try_lock(self) -> bool:
        """Connect and try the lock; the connection stays open either way (``close()``).

        Raises:
            psycopg.Error: the server cannot be reached or refused the session.
        """
        self.close()
        conn = psycopg.connect(**self._args, autocommit=True)
        self._conn = conn
        try:
            # A bound on every statement, so a hung server costs the watch one timeout.
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)", (str(self._timeout_ms),)
            )
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        except BaseException:
            self.close()
            raise
        return bool(row and row[0])

    def owner(self) -> str | None:
        """The store's owner token (None: none yet, or no ``meta`` table yet).

        Raises:
            psycopg.Error: the lock connection failed (the lock may be lost).
        """
        if not self.meta_exists():
            return None
        row = (
            self._require()
            .execute("SELECT value FROM meta WHERE key = %s", (OWNER_KEY,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def meta_exists(self) -> bool:
        """Raises: psycopg.Error: the lock connection failed."""
        row = self._require().execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        return bool(row and row[0])

    def claim(self, token: str) -> None:
        """Make ``token`` the owner: from its commit on, other tokens' commits are refused."""
        self._require().execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (OWNER_KEY, token),
        )

    def abort(self) -> None:
        """Break the connection under a call that waits on it (from another thread).

        A server that is hung, or a path that swallows packets after the kernel acked them,
        answers neither the statement nor its timeouts; shutting the socket down makes the
        waiting call fail at once.
        """
        with self._closing:
            conn = self._conn
            if conn is None or conn.closed:
                return
            with contextlib.suppress(OSError, psycopg.Error):
                fd = conn.pgconn.socket
                with socket.socket(fileno=os.dup(fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._closing:
            conn, self._conn = self._conn, None
        if conn is not None:
            # Already broken: the server ends the session (and frees the lock) itself.
            with contextlib.suppress(psycopg.Error, OSError):
                conn.close()

    def _require(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise psycopg.OperationalError("the lock connection is closed")
        return self._conn
