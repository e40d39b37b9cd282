"""Whether an export target is down, since when, and what the log says about it.

One warning when a target goes down, a reminder every ``down_reminder_interval`` while it
stays down, one line when it is back; the attempts between are counted but not logged
above DEBUG. A store failure (reading the log, saving the cursor, fenced) is the store's,
never "target down": one line per kind, then a reminder at the same pace.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loguru import logger

from agent.store.outage import ThrottledLog, describe, is_store_outage

STORE_TROUBLE = "store: "
"""How ``last_error`` starts when the store failed, not the target."""


class TargetHealth:
    """Down or up, for one target; ``clock``: monotonic seconds."""

    def __init__(
        self,
        name: str,
        retry_max: float,
        reminder_interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._retry_max = retry_max
        self._reminder_interval = reminder_interval
        self._clock = clock
        self._down_since: float | None = None
        self._attempts = 0
        self._reminded_at = 0.0

    def down_for(self) -> float | None:
        """Seconds since the target went down, None while it is up."""
        if self._down_since is None:
            return None
        return self._clock() - self._down_since

    def went_down(self, error: str | None, delay: float) -> None:
        """One warning when the target goes down, a reminder while it stays down."""
        now = self._clock()
        self._attempts += 1
        if self._down_since is None:
            self._down_since = now
            self._reminded_at = now
            logger.warning(
                "export target {} is down: {}; retrying with backoff ({:g}s up to {:g}s)",
                self.name,
                error,
                delay,
                self._retry_max,
            )
        elif now - self._reminded_at >= self._reminder_interval:
            self._reminded_at = now
            logger.warning(
                "export target {} still down after {:.0f}s and {} failed attempts: {}",
                self.name,
                now - self._down_since,
                self._attempts,
                error,
            )
        else:
            logger.debug(
                "export target {} attempt failed (retry in {:g}s): {}", self.name, delay, error
            )

    def came_back(self, cursor: int) -> None:
        """The target took a delivery (``cursor``: where it is now)."""
        if self._down_since is None:
            return
        logger.info(
            "export target {} is back after {:.1f}s down and {} failed attempts; "
            "delivered up to notification {}",
            self.name,
            self._clock() - self._down_since,
            self._attempts,
            cursor,
        )
        self._down_since = None
        self._attempts = 0


class StoreTrouble:
    """Logs the store failures of target ``name``; ``interval``: seconds between lines."""

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self._log = ThrottledLog(interval)

    def report(self, what: str, exc: Exception) -> str:
        """Log the failure (throttled when the store is out); returns the target's
        ``last_error`` for it."""
        line = f"export target {self.name}: {what}"
        if is_store_outage(exc):
            self._log.warning(line, exc)
        else:
            logger.opt(exception=exc).error("{}", line)
        return f"{STORE_TROUBLE}{what}: {describe(exc)}"
