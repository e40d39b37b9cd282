"""The syslog facilities (RFC 5424 section 6.2.1, table 1): names and codes.

Kept below the configuration and the syslog exporter, which both need the same table: the
settings accept exactly these names, the formatter turns them into PRI.
"""

from __future__ import annotations

from typing import Final

FACILITIES: Final[dict[str, int]] = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    "audit": 13,
    "alert": 14,
    "clock": 15,
    "local0": 16,
    "local1": 17,
    "local2": 18,
    "local3": 19,
    "local4": 20,
    "local5": 21,
    "local6": 22,
    "local7": 23,
}
