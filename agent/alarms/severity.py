"""One internal severity, converted explicitly for each export.

The numbering of the ITU perceived severity follows ITU-ALARM-TC-MIB (RFC 3877); the
syslog severity follows RFC 5674 section 2.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Severity(StrEnum):
    """Internal severity; the string value is what the config, API and CLI use."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    INDETERMINATE = "indeterminate"
    CLEARED = "cleared"

    @property
    def itu(self) -> ItuPerceivedSeverity:
        return _TO_ITU[self]

    @property
    def syslog(self) -> SyslogSeverity:
        return _TO_SYSLOG[self]

    @property
    def rank(self) -> int:
        """Higher is more severe; cleared ranks lowest, for severity filters."""
        return _RANK[self]

    def at_least(self, floor: Severity) -> bool:
        return self.rank >= floor.rank


class ItuPerceivedSeverity(IntEnum):
    """ITU-ALARM-TC-MIB ItuPerceivedSeverity."""

    CLEARED = 1
    INDETERMINATE = 2
    CRITICAL = 3
    MAJOR = 4
    MINOR = 5
    WARNING = 6


class SyslogSeverity(IntEnum):
    """RFC 5424 section 6.2.1 severity codes."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7


_TO_ITU = {
    Severity.CRITICAL: ItuPerceivedSeverity.CRITICAL,
    Severity.MAJOR: ItuPerceivedSeverity.MAJOR,
    Severity.MINOR: ItuPerceivedSeverity.MINOR,
    Severity.WARNING: ItuPerceivedSeverity.WARNING,
    Severity.INDETERMINATE: ItuPerceivedSeverity.INDETERMINATE,
    Severity.CLEARED: ItuPerceivedSeverity.CLEARED,
}

# RFC 5674 section 2: the mapping is fixed, not configurable.
_TO_SYSLOG = {
    Severity.CRITICAL: SyslogSeverity.ALERT,
    Severity.MAJOR: SyslogSeverity.CRITICAL,
    Severity.MINOR: SyslogSeverity.ERROR,
    Severity.WARNING: SyslogSeverity.WARNING,
    Severity.INDETERMINATE: SyslogSeverity.NOTICE,
    Severity.CLEARED: SyslogSeverity.NOTICE,
}

_RANK = {
    Severity.CLEARED: 0,
    Severity.INDETERMINATE: 1,
    Severity.WARNING: 2,
    Severity.MINOR: 3,
    Severity.MAJOR: 4,
    Severity.CRITICAL: 5,
}
