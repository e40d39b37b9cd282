"""The alarm inventory: every alarm and event type provsync can emit.

The catalog is data in the code (the built-in alarms in agent.alarms.builtin_alarms, the
events in agent.alarms.builtin_events). It is served by the control API (and, with the
SNMP issue, as the alarm type table of PROVSYNC-MIB). Sites add their own types with
``[[alarm_types]]`` in the configuration; those cannot shadow built-in ids. Each built-in
type names its vendor counterpart (``vendor``: what the vendors' consoles call it), or has
none; site types have none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from agent.alarms.builtin_alarms import ALARM_TYPES
from agent.alarms.builtin_events import EVENT_TYPES
from agent.alarms.definitions import AlarmType, EventType, Kind, VendorName
from agent.alarms.severity import Severity
from agent.errors import UnknownAlarmType

_A = Kind.ALARM
_E = Kind.EVENT
_ET = EventType
_S = Severity

BUILTIN_TYPES: tuple[AlarmType, ...] = (
    *ALARM_TYPES,
    *EVENT_TYPES,
    # --- added later: appended, since the MIB's alarm type table is indexed by position
    # (provsync's own: no vendor counterpart)
    AlarmType(
        "export-loss",
        "Notifications Lost Before Delivery",
        _A,
        _S.MAJOR,
        _ET.QUALITY_OF_SERVICE_ALARM,
        "storageCapacityProblem",
        "Retention purged notifications an export target had not received: it stayed behind "
        "longer than [retention] max_backlog or max_backlog_age allow. The text names the "
        "target and the sequence range lost; the target was told the range in words.",
        "The loss is permanent, so only the operator clears this alarm: compare with another "
        "target (or `provsync alarms list` for the current state), make the target keep up, "
        "then clear the alarm.",
        "provsync alarms clear export-loss --resource {resource} | POST /api/v1/alarms/clear",
    ),
    AlarmType(
        "export-gap",
        "Notifications Purged Before Delivery",
        _E,
        _S.MAJOR,
        _ET.QUALITY_OF_SERVICE_ALARM,
        "storageCapacityProblem",
        "Retention purged notifications an export target had not received (past [retention] "
        "max_backlog or max_backlog_age); the text names the target and the range. The "
        "target itself is sent an export-gap notice, numbered as the last lost notification, "
        "before the first one after the gap.",
        "",
    ),
    AlarmType(
        "element-emptied",
        "Element Returned No Data",
        _A,
        _S.MAJOR,
        _ET.PROCESSING_ERROR_ALARM,
        "databaseInconsistency",
        "An initialization sync found the element empty while the hub holds its data "
        "(restored, reset or replaced). Nothing was deleted; every sync of the element stops "
        "here until an operator decides.",
        "If the element really is empty, run a forced initialization: see first what it "
        "deletes with --dry-run, then confirm with --yes. If it is not, restore the element's "
        "data; the next initialization that finds data clears this alarm.",
        "provsync sync force {resource} --dry-run, then --yes | "
        "POST /api/v1/elements/{resource}/sync",
    ),
    AlarmType(
        "leadership-taken",
        "Cluster Leadership Taken",
        _E,
        _S.INDETERMINATE,
        _ET.OTHER,
        "other",
        "An agent of a [cluster] took the store's lock and leads: it runs the exporters, "
        "sync and sharing from now on. The resource is its node name; the text names the "
        "previous leader (none for a new store). Notifications the previous leader sent "
        "after its last cursor save may come again, with their sequence numbers.",
        "",
    ),
    AlarmType(
        "cluster-member-lost",
        "Cluster Member Lost",
        _A,
        _S.MAJOR,
        _ET.COMMUNICATIONS_ALARM,
        "communicationsSubsystemFailure",
        "An agent of the [cluster] sent no heartbeat for longer than [cluster] "
        "member_timeout without stopping: its host, its process or its path to the store "
        "failed. The resource is its node name; the text its last heartbeat. One standby "
        "fewer: the cluster survives one failure less.",
        "Start the agent on that host again (systemctl start provsync), or repair its path "
        "to the store; its next heartbeat clears this alarm, and so does an orderly stop. "
        "A member decommissioned for good is forgotten after [cluster] forget_after.",
        "provsync cluster | GET /api/v1/status",
    ),
)


class Catalog:
    """Built-in types plus the site's own, looked up by id."""

    def __init__(self, extra: Iterable[AlarmType] = ()) -> None:
        self._types: dict[str, AlarmType] = {t.id: t for t in BUILTIN_TYPES}
        for alarm_type in extra:
            if alarm_type.id in self._types:
                raise ValueError(f"alarm type {alarm_type.id!r} is built in")
            self._types[alarm_type.id] = alarm_type

    def get(self, type_id: str) -> AlarmType:
        try:
            return self._types[type_id]
        except KeyError:
            raise UnknownAlarmType(
                f"unknown alarm type {type_id!r} (see `provsync catalog`)"
            ) from None

    def describe(self, type_id: str) -> AlarmType:
        """The type, or a stand-in for one the configuration no longer defines (alarms
        of a removed site type stay readable and clearable)."""
        found = self._types.get(type_id)
        if found is not None:
            return found
        return AlarmType(
            type_id,
            type_id,
            Kind.ALARM,
            Severity.MINOR,
            EventType.OTHER,
            "other",
            "This alarm type is no longer defined in the configuration.",
            "",
            builtin=False,
        )

    def __contains__(self, type_id: object) -> bool:
        return type_id in self._types

    def __iter__(self) -> Iterator[AlarmType]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)


# The type vocabulary is defined in agent.alarms.definitions; it is imported from here.
__all__ = ["BUILTIN_TYPES", "AlarmType", "Catalog", "EventType", "Kind", "VendorName"]
