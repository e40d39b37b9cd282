"""Object identifiers of PROVSYNC-MIB, relative to the configurable root.

``tests/test_snmp_mib.py`` resolves every name here with net-snmp's ``snmptranslate``
against ``mibs/PROVSYNC-MIB.txt``, so the agent and the MIB cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable

# The enterprise root and OID parsing live below the configuration, which checks
# [snmp] enterprise_oid with them (agent.oids).
from agent.oids import ENTERPRISES, check_enterprise_root

DEFAULT_ROOT: tuple[int, ...] = (*ENTERPRISES, 32473, 1)


def _numbered(
    parent: tuple[int, ...], names: Iterable[str], first: int = 1
) -> dict[str, tuple[int, ...]]:
    return {name: (*parent, index) for index, name in enumerate(names, start=first)}


AGENT_SCALARS = (
    "provsyncAgentVersion",
    "provsyncAgentStartTime",
    "provsyncLastSequence",
    "provsyncActiveAlarms",
    "provsyncActiveCritical",
    "provsyncActiveMajor",
    "provsyncActiveMinor",
    "provsyncActiveWarning",
    "provsyncActiveIndeterminate",
    "provsyncActiveAlarmsLastChanged",
)
ALARM_TYPE_COLUMNS = (
    "provsyncAlarmTypeIndex",
    "provsyncAlarmTypeId",
    "provsyncAlarmTypeName",
    "provsyncAlarmTypeKind",
    "provsyncAlarmTypeSeverity",
    "provsyncAlarmTypeEventType",
    "provsyncAlarmTypeProbableCause",
    "provsyncAlarmTypeDescription",
    "provsyncAlarmTypeClearInstructions",
    "provsyncAlarmTypeProbableCauseCode",
)
ACTIVE_ALARM_COLUMNS = (
    "provsyncAlarmId",
    "provsyncAlarmTypeRef",
    "provsyncAlarmName",
    "provsyncAlarmResource",
    "provsyncAlarmQualifier",
    "provsyncAlarmSeverity",
    "provsyncAlarmEventType",
    "provsyncAlarmProbableCause",
    "provsyncAlarmText",
    "provsyncAlarmRaisedTime",
    "provsyncAlarmChangedTime",
    "provsyncAlarmCount",  # deprecated (a Counter32 used as a count), still served
    "provsyncAlarmOperatorState",
    "provsyncAlarmAckBy",
    "provsyncAlarmRaiseSequence",
    "provsyncAlarmResolution",
    "provsyncAlarmProbableCauseCode",
    "provsyncAlarmOccurrences",
)
LOG_COLUMNS = (
    "provsyncLogSequence",
    "provsyncLogTime",
    "provsyncLogKind",
    "provsyncLogAlarmId",
    "provsyncLogTypeId",
    "provsyncLogResource",
    "provsyncLogSeverity",
    "provsyncLogText",
    "provsyncLogRaiseSequence",
)
ELEMENT_COLUMNS = (
    "provsyncElementIndex",
    "provsyncElementName",
    "provsyncElementType",
    "provsyncElementSyncState",
    "provsyncElementSharingState",
    "provsyncElementLastSync",
    "provsyncElementDistributionErrors",
)
NOTIFY_OBJECTS = (
    "provsyncNotifySequence",
    "provsyncNotifyAlarmId",
    "provsyncNotifyTypeId",
    "provsyncNotifyTypeName",
    "provsyncNotifyResource",
    "provsyncNotifySeverity",
    "provsyncNotifyEventType",
    "provsyncNotifyProbableCause",
    "provsyncNotifyText",
    "provsyncNotifyTime",
    "provsyncNotifyRaiseSequence",
    "provsyncNotifyResolution",
    "provsyncNotifyQualifier",
    "provsyncNotifyProbableCauseCode",
    "provsyncNotifyOperatorState",
    "provsyncNotifyAckBy",
)
NOTIFICATIONS = (
    "provsyncAlarmRaised",
    "provsyncAlarmCleared",
    "provsyncAlarmChanged",
    "provsyncEvent",
    "provsyncHeartbeat",
)

# Arcs below the module root, for every named node of the MIB.
RELATIVE: dict[str, tuple[int, ...]] = {
    "provsyncMIB": (),
    "provsyncNotifications": (0,),
    "provsyncObjects": (1,),
    "provsyncConformance": (2,),
    "provsyncAgent": (1, 1),
    "provsyncAlarmTypeTable": (1, 2),
    "provsyncAlarmTypeEntry": (1, 2, 1),
    "provsyncActiveAlarmTable": (1, 3),
    "provsyncActiveAlarmEntry": (1, 3, 1),
    "provsyncNotificationLogTable": (1, 4),
    "provsyncNotificationLogEntry": (1, 4, 1),
    "provsyncElementTable": (1, 5),
    "provsyncElementEntry": (1, 5, 1),
    "provsyncNotifyObjects": (1, 6),
    "provsyncCompliances": (2, 1),
    "provsyncCompliance": (2, 1, 1),
    "provsyncCompliance2": (2, 1, 2),
    "provsyncGroups": (2, 2),
    **_numbered((0,), NOTIFICATIONS),
    **_numbered((1, 1), AGENT_SCALARS),
    **_numbered((1, 2, 1), ALARM_TYPE_COLUMNS),
    **_numbered((1, 3, 1), ACTIVE_ALARM_COLUMNS),
    **_numbered((1, 4, 1), LOG_COLUMNS),
    **_numbered((1, 5, 1), ELEMENT_COLUMNS),
    **_numbered((1, 6), NOTIFY_OBJECTS),
}

# SNMPv2-MIB objects the agent serves or sends.
SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_CONTACT = (1, 3, 6, 1, 2, 1, 1, 4, 0)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
SYS_LOCATION = (1, 3, 6, 1, 2, 1, 1, 6, 0)
SYS_SERVICES = (1, 3, 6, 1, 2, 1, 1, 7, 0)
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)


class MibOids:
    """Absolute OIDs of PROVSYNC-MIB under ``root``."""

    def __init__(self, root: tuple[int, ...] = DEFAULT_ROOT) -> None:
        self.root = check_enterprise_root(root)

    def __getitem__(self, name: str) -> tuple[int, ...]:
        return self.root + RELATIVE[name]

    def instance(self, name: str, *index: int) -> tuple[int, ...]:
        return self[name] + (index or (0,))
