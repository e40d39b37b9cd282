"""Telling a store outage from a bug, and logging outages without flooding the log.

While the store is down every write and read fails the same way, many times a second; a
traceback for each says nothing new and buries what else happens (an 8 s PostgreSQL
outage once wrote 52,000 lines). An outage is logged as one line per kind of failure,
then at most once per ``interval`` with the count of those not shown. Anything else is a
bug, and its caller keeps the traceback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from loguru import logger
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from agent.errors import StoreError


def is_store_outage(exc: BaseException) -> bool:
    """True for failures of the store itself: connection lost or refused, database locked,
    disk full or read-only, pool exhausted (not constraint violations or bad SQL)."""
    if isinstance(exc, StoreError | OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def describe(exc: BaseException) -> str:
    """The driver's first line, without the SQL statement or its parameters."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else 'no message'}"


class ThrottledLog:
    """One warning per kind of failure per ``interval`` seconds (thread-safe).

    Args:
        interval: the shortest time between two lines of one kind.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> [time of the last line, failures since it]; kinds are few (what x class).
        self._kinds: dict[str, list[float]] = {}

    def warning(self, what: str, exc: BaseException) -> bool:
        """Log ``what: <driver's line>`` unless one of its kind was logged lately.

        Returns: whether a line was written.
        """
        text = describe(exc)
        kind = f"{what}|{text.partition(':')[0]}"
        now = self._clock()
        with self._lock:
            state = self._kinds.get(kind)
            if state is not None and now - state[0] < self.interval:
                state[1] += 1
                return False
            suppressed = int(state[1]) if state is not None else 0
            self._kinds[kind] = [now, 0]
        more = f" ({suppressed} more since the last such line)" if suppressed else ""
        logger.warning("{}: {}{}", what, text, more)
        return True
