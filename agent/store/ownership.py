"""Ownership of a PostgreSQL store, and fencing: no commit unless this agent owns it.

Three parts, because each alone leaves a hole:

- ``ServerLock`` (agent.store.server_lock): a session-level advisory lock held on a
  dedicated connection. The server frees it when that session ends, so a dropped
  connection means the lock may already belong to another agent.
- ``OwnershipWatch``: a thread that checks the lock connection every ``interval`` (with
  timeouts on connecting, on each statement and on unacknowledged TCP data). On any
  failure it fences the store at once, then tries to take the lock again on a fresh
  connection; only when it holds the lock again, and nobody else owned the store in the
  meantime, is the fence lifted.
- ``OwnerFence``: the watch notices a loss only after up to one interval plus a timeout.
  To close that window, the owner writes a fresh token into ``meta`` (key ``owner``) when
  it takes the lock, and every commit on the store's engine first reads that row
  ``FOR SHARE`` and refuses to commit unless the token is ours. A new owner's update of
  the row waits for the share locks of commits in flight, so once it has committed, every
  later commit of the old owner fails the check and rolls back: two agents never both
  commit to one store.

SQLite needs none of this: its ``flock`` cannot be lost while the process lives.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from enum import StrEnum

import psycopg
from loguru import logger
from sqlalchemy import Connection, Engine, event, text

from agent.errors import StoreFencedError, StoreLockedError
from agent.store.server_lock import ServerLock, failure_reason

FENCED = "store ownership lost; not writing until the lock is held again"
_CHECK = text("SELECT value FROM meta WHERE key = 'owner' FOR SHARE")


def new_token() -> str:
    """Unique per acquisition; host and pid say who owns the store to whoever reads it."""
    return f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex}"


def who(token: str | None) -> str:
    """The readable part of a token ("host pid N")."""
    if not token:
        return "unknown"
    return token.rsplit(" ", 1)[0]


class OwnershipState(StrEnum):
    OWNED = "owned"
    FENCED = "fenced"
    LOST = "lost"
    """Another agent owns the store now; this one must not write again (it exits)."""


class OwnerFence:
    """Refuses every commit on an engine unless this agent's token is the store's owner."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._fenced_since: float | None = None
        self._engine: Engine | None = None

    @property
    def fenced(self) -> bool:
        return self._fenced_since is not None

    @property
    def fenced_for(self) -> float:
        since = self._fenced_since
        return 0.0 if since is None else time.monotonic() - since

    def fence(self) -> bool:
        """Refuse commits from now on; True if this call fenced it."""
        with self._lock:
            if self._fenced_since is not None:
                return False
            self._fenced_since = time.monotonic()
            return True

    def unfence(self) -> None:
        with self._lock:
            self._fenced_since = None

    def install(self, engine: Engine) -> None:
        event.listen(engine, "commit", self._before_commit)
        self._engine = engine

    def remove(self) -> None:
        if self._engine is not None:
            event.remove(self._engine, "commit", self._before_commit)
            self._engine = None

    def check(self) -> None:
        """Raises: StoreFencedError: fenced now."""
        if self._fenced_since is not None:
            raise StoreFencedError(FENCED)

    def _before_commit(self, conn: Connection) -> None:
        self.check()
        # Inside the transaction being committed: the row's share lock is held until the
        # COMMIT, so a new owner's token update waits for it (or we see its token).
        owner = conn.execute(_CHECK).scalar()
        if owner != self.token:
            self.fence()
            raise StoreFencedError(f"{FENCED} (the store is owned by {who(owner)})")


LostListener = Callable[[str], None]


class OwnershipWatch:
    """Checks the lock every ``interval``; fences, re-acquires, or gives the store up.

    Args:
        lock: the lock, already held.
        fence: installed on the store's engine; its token is in ``meta``.
        interval: seconds between checks (and between attempts to re-acquire).
        name: the store, redacted, for log lines.
        on_lost: called once (from the watch thread) with the reason when another
            agent owns the store: this one must stop.
    """

    def __init__(
        self,
        lock: ServerLock,
        fence: OwnerFence,
        interval: float,
        name: str,
        on_lost: LostListener | None = None,
    ) -> None:
        self._lock = lock
        self._fence = fence
        self._interval = interval
        self._name = name
        self.on_lost = on_lost
        self.state = OwnershipState.OWNED
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiting_logged = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-owner-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # One check at most: each of its waits is bounded by the lock's timeouts.
            self._thread.join(30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            # The check's own timeouts need a server that answers at the TCP level; this
            # one needs nothing from it.
            watchdog = threading.Timer(self._lock.timeout, self._hung)
            watchdog.daemon = True
            watchdog.start()
            try:
                self.check()
            except Exception:
                logger.exception("store ownership check failed")
            finally:
                watchdog.cancel()
            if self.state is OwnershipState.LOST:
                return

    def _hung(self) -> None:
        if self._lock.connected:
            self._lose(f"the lock check got no answer within {self._lock.timeout:g}s")
        self._lock.abort()

    def check(self) -> OwnershipState:
        """One round: confirm the lock, or fence, or try to get it back."""
        if self.state is OwnershipState.LOST:
            return self.state
        if self._lock.connected:
            try:
                owner = self._lock.owner()
            except (psycopg.Error, OSError) as exc:
                self._lock.close()
                self._lose(f"the connection holding the lock failed: {failure_reason(exc)}")
                return self.state
            if owner == self._fence.token:
                if self._fence.fenced:
                    self._regain()
                return self.state
            self._lock.close()
            self._give_up(owner)
            return self.state
        self._lose("the lock connection is closed")
        self._reacquire()
        return self.state

    def _reacquire(self) -> None:
        try:
            got = self._lock.try_lock()
            owner = self._lock.owner()
        except (psycopg.Error, OSError) as exc:
            self._lock.close()
            logger.debug("store {}: lock not re-acquired yet: {}", self._name, failure_reason(exc))
            return
        if owner != self._fence.token:
            self._lock.close()
            self._give_up(owner)
            return
        if not got:
            # Our token is still the owner: the server has not yet ended the session that
            # held the lock (it ends it when it notices that connection is gone).
            self._lock.close()
            if not self._waiting_logged:
                self._waiting_logged = True
                logger.warning(
                    "store {}: the server still holds the lock for the lost connection; "
                    "waiting for it to let go",
                    self._name,
                )
            return
        self._regain()

    def _lose(self, reason: str) -> None:
        if self._fence.fence():
            self.state = OwnershipState.FENCED
            logger.warning(
                "store ownership lost ({}): {}; not writing until the lock is held again",
                self._name,
                reason,
            )

    def _regain(self) -> None:
        lasted = self._fence.fenced_for
        self._fence.unfence()
        self.state = OwnershipState.OWNED
        self._waiting_logged = False
        logger.info("store ownership regained ({}) after {:.1f}s fenced", self._name, lasted)

    def _give_up(self, owner: str | None) -> None:
        self._fence.fence()
        self.state = OwnershipState.LOST
        message = (
            f"store {self._name} was taken over by another agent ({who(owner)}) while "
            "this one had lost its lock; stopping (its state is stale: a restart, or a "
            "[cluster] member's standby, starts from the store again)"
        )
        logger.error(message)
        if self.on_lost is not None:
            self.on_lost(message)


class ServerOwnership:
    """Takes the lock, claims the store with a fresh token, fences the engine, watches."""

    def __init__(self, engine: Engine, name: str, *, interval: float, timeout: float) -> None:
        self._engine = engine
        self._name = name
        self._interval = interval
        self.lock = ServerLock(engine.url, timeout)
        self.fence = OwnerFence(new_token())
        self.watch: OwnershipWatch | None = None
        self.on_lost: LostListener | None = None

    @property
    def state(self) -> OwnershipState:
        if self.watch is not None and self.watch.state is OwnershipState.LOST:
            return OwnershipState.LOST
        # The commit check may fence before the watch has looked.
        return OwnershipState.FENCED if self.fence.fenced else OwnershipState.OWNED

    def acquire(self) -> None:
        """Take the lock and claim the store, before migrating it.

        Raises:
            StoreLockedError: another agent holds the lock.
            psycopg.Error: the server cannot be reached.
        """
        if not self.lock.try_lock():
            self.lock.close()
            raise StoreLockedError(f"store {self._name} is in use by another provsync agent")
        # Claimed before migrating, so a newer agent's migration never runs while an old
        # owner that has not noticed its loss can still commit (on a new store there is
        # no ``meta`` yet, and nobody to fence).
        if self.lock.meta_exists():
            self.lock.claim(self.fence.token)

    def start(self) -> None:
        """After migrating: claim (the first migration made ``meta``), fence, watch."""
        self.lock.claim(self.fence.token)
        self.fence.install(self._engine)
        self.watch = OwnershipWatch(self.lock, self.fence, self._interval, self._name, self._lost)
        self.watch.start()

    def _lost(self, message: str) -> None:
        if self.on_lost is not None:
            self.on_lost(message)

    def release(self) -> None:
        if self.watch is not None:
            self.watch.stop()
            self.watch = None
        self.fence.remove()
        self.lock.close()


__all__ = [
    "FENCED",
    "OwnerFence",
    "OwnershipState",
    "OwnershipWatch",
    "ServerOwnership",
    "new_token",
    "who",
]
