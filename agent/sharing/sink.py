"""How the sharing components use the alarm sink: the hub's resource, a tolerant clear."""

from __future__ import annotations

import contextlib

from agent.alarms.ports import AlarmSink
from agent.errors import ProvsyncError

HUB = "hub"
"""Resource of hub-wide alarms and events (ftp-inactive, device data)."""


async def clear_if_active(
    alarms: AlarmSink, type_id: str, resource: str, qualifier: str = "", note: str = ""
) -> None:
    """Clear the alarm when it is active; one cleared meanwhile by someone else is fine."""
    if alarms.is_active(type_id, resource, qualifier):
        with contextlib.suppress(ProvsyncError):
            await alarms.clear(
                type_id=type_id, resource=resource, qualifier=qualifier, note=note or None
            )
