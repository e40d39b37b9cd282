"""The clock: wall time for the store's timestamps (UTC, timezone-aware), and the
monotonic time and sleeps of the components that wait.

``now()`` is one function so that every component stamps rows the same way. Components
that take a ``Clock`` (the sync engine, the sharing service; app.py passes its own, by
default ``SYSTEM_CLOCK``) let a test drive time by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


def now() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    """Where a component reads the time and waits."""

    def now(self) -> datetime:
        """Wall time, UTC, timezone-aware (what the store records)."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go back (for intervals)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``now()``, ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> datetime:
        return now()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
