"""The standard objects every SNMP agent serves, with the agent's own values.

- SNMPv2-MIB (RFC 3418): sysORLastChange and sysORTable (the capabilities the agent
  implements), the snmp group counters that RFC 3418 keeps current, snmpEnableAuthenTraps
  and snmpSetSerialNo;
- SNMP-FRAMEWORK-MIB (RFC 3411) snmpEngine group: the engine ID, boots, time and maximum
  message size pysnmp's engine uses for SNMPv3, read from that engine so a manager's
  timeliness checks and these values cannot disagree;
- SNMP-MPD-MIB (RFC 3412) snmpMPDStats and SNMP-USER-BASED-SM-MIB (RFC 3414) usmStats.

Counters add what each stage counted (agent.export.snmp.counters): the listener (every
datagram), the screen and the fast path (drops by reason, agent.export.snmp.drops) and
pysnmp's engine (the v3 messages that passed the screen, and its own counters: reports,
decryption, time windows). Each datagram is counted once: a v3 message the screen hands
to pysnmp is counted by pysnmp, not by the screen. The v1/v2c path and the v3 path read
the same regions, so the same GET over v2c and v3 gets the same answer (counters aside).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysnmp.entity import config as pysnmp_config

from agent.export.snmp import ber
from agent.export.snmp.counters import SET_REFUSED, Counts
from agent.export.snmp.drops import Drop
from agent.export.snmp.oids import RELATIVE, MibOids
from agent.export.snmp.view import ScalarRegion, TableRegion

# SNMPv2-MIB (RFC 3418).
SYSTEM = (1, 3, 6, 1, 2, 1, 1)
SYS_OR_LAST_CHANGE = (*SYSTEM, 8)
SYS_OR_ENTRY = (*SYSTEM, 9, 1)
SNMP_GROUP = (1, 3, 6, 1, 2, 1, 11)
SNMP_IN_PKTS = (*SNMP_GROUP, 1)
SNMP_IN_BAD_VERSIONS = (*SNMP_GROUP, 3)
SNMP_IN_BAD_COMMUNITY_NAMES = (*SNMP_GROUP, 4)
SNMP_IN_BAD_COMMUNITY_USES = (*SNMP_GROUP, 5)
SNMP_IN_ASN_PARSE_ERRS = (*SNMP_GROUP, 6)
SNMP_ENABLE_AUTHEN_TRAPS = (*SNMP_GROUP, 30)
SNMP_SILENT_DROPS = (*SNMP_GROUP, 31)
SNMP_PROXY_DROPS = (*SNMP_GROUP, 32)
SNMP_MIB = (1, 3, 6, 1, 6, 3, 1)
SNMP_SET = (*SNMP_MIB, 1, 6)
SNMP_SET_SERIAL_NO = (*SNMP_SET, 1)
# SNMP-FRAMEWORK-MIB (RFC 3411).
SNMP_ENGINE = (1, 3, 6, 1, 6, 3, 10, 2, 1)
SNMP_ENGINE_ID = (*SNMP_ENGINE, 1)
SNMP_ENGINE_BOOTS = (*SNMP_ENGINE, 2)
SNMP_ENGINE_TIME = (*SNMP_ENGINE, 3)
SNMP_ENGINE_MAX_MESSAGE_SIZE = (*SNMP_ENGINE, 4)
SNMP_FRAMEWORK_COMPLIANCE = (1, 3, 6, 1, 6, 3, 10, 3, 1, 1)
# SNMP-MPD-MIB (RFC 3412).
SNMP_MPD_STATS = (1, 3, 6, 1, 6, 3, 11, 2, 1)
SNMP_MPD_COMPLIANCE = (1, 3, 6, 1, 6, 3, 11, 3, 1, 1)
# SNMP-USER-BASED-SM-MIB (RFC 3414).
USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)

READ_SUBTREES = (SNMP_GROUP, SNMP_SET, SNMP_ENGINE, SNMP_MPD_STATS, USM_STATS)
"""What the v3 read view needs beyond the system group and PROVSYNC-MIB."""

DISPLAY_STRING_MAX = 255
"""DisplayString (RFC 2579) and SnmpAdminString without a SIZE: 0..255 octets."""
AUTHEN_TRAPS_DISABLED = 2
"""snmpEnableAuthenTraps disabled(2): the agent sends no authenticationFailure trap."""


def display_string(value: str, limit: int = DISPLAY_STRING_MAX) -> bytes:
    """An OCTET STRING of at most ``limit`` characters of ``value`` as NVT ASCII (RFC
    2579 DisplayString): a character outside printable US-ASCII (a configured
    ``sys_location = "Zürich"``, a tab) is sent as ``?``, so a strict decoder reads it."""
    raw = "".join(c if " " <= c <= "~" else "?" for c in value[:limit]).encode("ascii")
    return ber.octets(raw)


def provsync_compliance(oids: MibOids) -> tuple[int, ...]:
    """PROVSYNC-MIB's current MODULE-COMPLIANCE under the configured root."""
    for name in ("provsyncCompliance2", "provsyncCompliance"):
        if name in RELATIVE:
            return oids[name]
    return (*oids["provsyncCompliances"], 1)


@dataclass(frozen=True)
class Capability:
    """One sysORTable row: what the agent implements, and how it says so."""

    oid: tuple[int, ...]
    description: str


def capabilities(oids: MibOids) -> list[Capability]:
    """The sysORTable rows, in sysORIndex order.

    Only what is served in full: USM and VACM are implemented (through pysnmp) but
    their compliances require the usmUserTable and the vacm tables, which the agent
    does not serve, so they are not claimed.
    """
    return [
        Capability(
            provsync_compliance(oids),
            "PROVSYNC-MIB: provsync alarms, alarm "
            "inventory, notification log and network elements (read-only)",
        ),
        Capability(SNMP_MIB, "SNMPv2-MIB (RFC 3418): system and snmp groups, read-only"),
        Capability(
            SNMP_FRAMEWORK_COMPLIANCE, "SNMP-FRAMEWORK-MIB (RFC 3411): the snmpEngine group"
        ),
        Capability(
            SNMP_MPD_COMPLIANCE,
            "SNMP-MPD-MIB (RFC 3412): message processing for SNMPv1, v2c and v3",
        ),
    ]


def _counter(read: Callable[[], int]) -> Callable[[], bytes]:
    return lambda: ber.unsigned(read() & 0xFFFFFFFF, ber.COUNTER32)


def _integer(read: Callable[[], int]) -> Callable[[], bytes]:
    return lambda: ber.integer(read())


def snmp_region(counts: Counts) -> ScalarRegion:
    """The snmp group: the objects RFC 3418 keeps current (snmpOutPkts and the other
    per-PDU counters are obsolete and not served)."""
    disabled = ber.integer(AUTHEN_TRAPS_DISABLED)
    return ScalarRegion(
        [
            (SNMP_IN_PKTS, _counter(counts.in_packets)),
            (SNMP_IN_BAD_VERSIONS, _counter(counts.bad_versions)),
            (SNMP_IN_BAD_COMMUNITY_NAMES, _counter(lambda: counts.own(Drop.BAD_COMMUNITY.value))),
            (SNMP_IN_BAD_COMMUNITY_USES, _counter(lambda: counts.own(SET_REFUSED))),
            (SNMP_IN_ASN_PARSE_ERRS, _counter(counts.parse_errors)),
            (SNMP_ENABLE_AUTHEN_TRAPS, lambda: disabled),
            (SNMP_SILENT_DROPS, _counter(lambda: counts.pysnmp("silent_drops"))),
            # The agent is no proxy: it forwards nothing, so it drops nothing forwarded.
            (SNMP_PROXY_DROPS, _counter(lambda: 0)),
        ]
    )


def set_region() -> ScalarRegion:
    """snmpSetSerialNo (snmpSetGroup): a TestAndIncr, any value at start (RFC 2579);
    nothing can SET it here, so it never moves."""
    serial = ber.integer(secrets.randbelow(2**31))
    return ScalarRegion([(SNMP_SET_SERIAL_NO, lambda: serial)])


def engine_region(counts: Counts) -> ScalarRegion:
    return ScalarRegion(
        [
            (SNMP_ENGINE_ID, lambda: ber.octets(counts.engine_id())),
            (SNMP_ENGINE_BOOTS, _integer(counts.engine_boots)),
            (SNMP_ENGINE_TIME, _integer(counts.engine_time)),
            (SNMP_ENGINE_MAX_MESSAGE_SIZE, _integer(counts.max_message_size)),
        ]
    )


def mpd_region(counts: Counts) -> ScalarRegion:
    """snmpMPDStats (RFC 3412 5): the screen's refusals and pysnmp's."""
    return ScalarRegion(
        [
            (
                (*SNMP_MPD_STATS, 1),
                _counter(
                    lambda: counts.usm(Drop.V3_UNKNOWN_SECURITY_MODEL, "unknown_security_models")
                ),
            ),
            (
                (*SNMP_MPD_STATS, 2),
                _counter(lambda: counts.usm(Drop.V3_INVALID_MSG, "invalid_msgs")),
            ),
            ((*SNMP_MPD_STATS, 3), _counter(counts.unknown_pdu_handlers)),
        ]
    )


def _usm_stat(counts: Counts, drop: Drop | None, key: str) -> Callable[[], int]:
    return lambda: counts.usm(drop, key)


def usm_region(counts: Counts) -> ScalarRegion:
    """usmStats (RFC 3414 5): what the screen dropped for each reason, and what pysnmp
    answered with a report."""
    stats: list[tuple[Drop | None, str]] = [
        (Drop.V3_UNSUPPORTED_SEC_LEVEL, "unsupported_sec_levels"),
        (None, "not_in_time_windows"),
        (Drop.V3_UNKNOWN_USER, "unknown_user_names"),
        (Drop.V3_UNKNOWN_ENGINE_ID, "unknown_engine_ids"),
        (Drop.V3_WRONG_DIGEST, "wrong_digests"),
        (None, "decryption_errors"),
    ]
    return ScalarRegion(
        [
            ((*USM_STATS, number), _counter(_usm_stat(counts, drop, key)))
            for number, (drop, key) in enumerate(stats, start=1)
        ]
    )


class SysOr:
    """sysORLastChange and sysORTable: the capabilities, registered at start."""

    def __init__(self, rows: list[Capability]) -> None:
        self.rows = rows
        self.registered_at = 0
        """sysUpTime (hundredths of a second) when the rows were registered."""
        self.table = TableRegion(SYS_OR_ENTRY, range(2, 5))
        self.last_change = ScalarRegion(
            [(SYS_OR_LAST_CHANGE, lambda: ber.unsigned(self.registered_at, ber.TIMETICKS))]
        )
        self.register(0)

    def register(self, uptime: int) -> None:
        """Every row registered at ``uptime`` (the agent registers all at start)."""
        self.registered_at = uptime
        stamp = ber.unsigned(uptime, ber.TIMETICKS)
        self.table.replace(
            [
                (index, [ber.oid(row.oid), display_string(row.description), stamp])
                for index, row in enumerate(self.rows, start=1)
            ]
        )


def add_read_views(snmp_engine: Any, view_name: str) -> None:
    """Let v3 users read the standard objects (the VACM read view is the PROVSYNC
    subtree and the system group otherwise)."""
    for subtree in READ_SUBTREES:
        pysnmp_config.add_vacm_view(snmp_engine, view_name, "included", subtree, b"")


__all__ = [
    "Capability",
    "SysOr",
    "add_read_views",
    "capabilities",
    "display_string",
    "engine_region",
    "mpd_region",
    "set_region",
    "snmp_region",
    "usm_region",
]
