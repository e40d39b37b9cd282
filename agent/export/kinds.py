"""The notification kinds an export target's filter names (``kinds`` in [[snmp.targets]]
and [[syslog.collectors]]): the log's kinds, with the heartbeat event apart.

Shared by the SNMP and syslog exporters, which must not import one another.
"""

from __future__ import annotations

from agent.alarms.records import Notification, NotificationKind

HEARTBEAT_TYPE = "heartbeat"
"""The built-in event type (agent.alarms.catalog) the exporters send as their heartbeat."""


def kind_of(note: Notification) -> str:
    """The target filter name of a notification (one of config.NOTIFICATION_KINDS)."""
    if note.kind is NotificationKind.EVENT and note.type_id == HEARTBEAT_TYPE:
        return "heartbeat"
    return note.kind.value
