"""An element's sync schedule: a crontab expression checked on write, and when it is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agent.errors import InvalidRequest

if TYPE_CHECKING:
    from agent.store.elements import Element


def check_cron(expression: str) -> str:
    """A crontab expression (five fields, UTC), or a clear error."""
    if not expression:
        return ""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression, timezone=UTC)
    except ValueError as exc:
        raise InvalidRequest(f"cron {expression!r} is not a crontab expression: {exc}") from None
    return expression


def next_due(element: Element, last_attempt: datetime | None = None) -> datetime | None:
    """When the element's next scheduled incremental sync is due (None: no schedule).

    Counted from the last attempt, failed or not, so a failing element is tried once per
    period rather than continuously; an element whose initialization failed is scheduled
    too (its incremental sync escalates).
    """
    since: datetime = max(
        t for t in (element.last_sync_at, element.created_at, last_attempt) if t is not None
    )
    if element.cron:
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(element.cron, timezone=UTC)
        fire = trigger.get_next_fire_time(None, since)
        return fire if isinstance(fire, datetime) else None
    if element.interval > 0:
        return since + timedelta(seconds=element.interval)
    return None
