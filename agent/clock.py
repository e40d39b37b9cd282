"""The wall clock the store's timestamps come from (UTC, timezone-aware).

One function so that every component stamps rows the same way; sync and sharing both
record job and distribution times with it.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
